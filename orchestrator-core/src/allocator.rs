//! The [`Allocator`] seam: the master's decision of who is offered what.

use std::time::{Duration, Instant};

use crate::{AgentId, AgentInfo, FrameworkId, FrameworkInfo, Name, Resources, Result};

/// Resources of one agent given to one framework, in one of its roles.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Who receives them.
    pub framework_id: FrameworkId,
    /// Whose they are.
    pub agent_id: AgentId,
    /// The role they are allocated to (the framework may have several).
    pub role: Name,
    /// What is allocated; each entry carries `allocation_role`.
    pub resources: Resources,
}

/// A role's quota: what it is guaranteed and the most it may hold, as
/// scalar quantities (`cpus:4;mem:4096`). Names absent from `limits` are
/// unlimited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Quota {
    /// Resources the role is offered before roles without guarantees.
    pub guarantees: Resources,
    /// The most the role may be allocated, offers included.
    pub limits: Option<Resources>,
}

/// A role as an allocator sees it: what the operator endpoints (`/roles`,
/// `/weights`, `/quota`) show.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleInfo {
    /// The role's name.
    pub name: String,
    /// Its weight (1 unless set).
    pub weight: f64,
    /// Its quota guarantees (empty without quota).
    pub guarantees: Resources,
    /// Its quota limits, when it has any.
    pub limits: Option<Resources>,
    /// Scalars held by the role and its descendants, offers included.
    pub allocated: Resources,
}

/// Decides which framework is offered which agent's free resources.
///
/// Implementations are synchronous and pure: the master feeds them events
/// (agents and frameworks coming and going, resources given back, filters)
/// and asks for a round of offers with [`allocate`](Self::allocate), passing
/// the current time so filters expire deterministically in tests.
///
/// Resources offered count as allocated until the framework uses them (they
/// stay allocated) or gives them back with
/// [`recover_resources`](Self::recover_resources).
pub trait Allocator: Send {
    /// Adds an agent with its total resources and what frameworks already
    /// use on it (after a master failover, for example).
    ///
    /// # Errors
    /// When the agent is known already or `used` exceeds its total.
    fn add_agent(&mut self, agent_id: AgentId, info: &AgentInfo, used: &[Allocation]) -> Result<()>;

    /// Replaces an agent's total resources (e.g. after a dynamic reservation
    /// outside an offer).
    ///
    /// # Errors
    /// When the agent is unknown.
    fn update_agent(&mut self, agent_id: &AgentId, total: Resources) -> Result<()>;

    /// Removes an agent and everything allocated on it.
    fn remove_agent(&mut self, agent_id: &AgentId);

    /// Stops offering an agent's resources (it is unreachable or draining)
    /// without forgetting what runs there.
    fn deactivate_agent(&mut self, agent_id: &AgentId);

    /// Resumes offering an agent's resources.
    fn activate_agent(&mut self, agent_id: &AgentId);

    /// Adds a framework in the roles its info names; offers for the roles in
    /// `suppressed_roles` are suppressed from the start.
    ///
    /// # Errors
    /// When the framework is known already or a role name is invalid.
    fn add_framework(
        &mut self,
        framework_id: FrameworkId,
        info: &FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<()>;

    /// Changes a framework's roles (a re-subscription); allocations in roles
    /// it leaves stay until they are recovered.
    ///
    /// # Errors
    /// When the framework is unknown or a role name is invalid.
    fn update_framework(
        &mut self,
        framework_id: &FrameworkId,
        info: &FrameworkInfo,
        suppressed_roles: &[String],
    ) -> Result<()>;

    /// Removes a framework and gives back everything allocated to it.
    fn remove_framework(&mut self, framework_id: &FrameworkId);

    /// Gives back resources (a declined or rescinded offer, a finished task).
    /// With `refuse`, the framework is not offered resources of this agent
    /// that it just refused for that long (at least one allocation interval);
    /// `Some(Duration::ZERO)` and `None` install no filter.
    fn recover_resources(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        resources: &Resources,
        refuse: Option<Duration>,
        now: Instant,
    );

    /// Replaces `from` by `to` in what the framework holds on the agent and in
    /// the agent's total: a `RESERVE` or `UNRESERVE` of offered resources.
    ///
    /// # Errors
    /// When `from` is not allocated to the framework on that agent, or
    /// `to` is not the same amount.
    fn update_allocation(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        from: &Resources,
        to: &Resources,
    ) -> Result<()>;

    /// Stops offers to the framework in `roles` (all its roles when empty).
    fn suppress(&mut self, framework_id: &FrameworkId, roles: &[String]);

    /// Resumes offers in `roles` (all when empty) and clears its filters.
    fn revive(&mut self, framework_id: &FrameworkId, roles: &[String]);

    /// Sets a role's weight.
    ///
    /// # Errors
    /// For a weight that is not a positive finite number, or a bad role name.
    fn set_weight(&mut self, role: &str, weight: f64) -> Result<()>;

    /// Sets a role's quota.
    ///
    /// # Errors
    /// For non-scalar or negative quantities, guarantees above limits, or
    /// a bad role name.
    fn set_quota(&mut self, role: &str, quota: Quota) -> Result<()>;

    /// Removes a role's quota.
    fn remove_quota(&mut self, role: &str);

    /// Every role the allocator knows (each role a framework is in, or with
    /// a weight or quota set), with its weight, quota and what it holds.
    fn roles(&self) -> Vec<RoleInfo>;

    /// Runs one allocation round at time `now` and returns the new offers.
    fn allocate(&mut self, now: Instant) -> Vec<Allocation>;
}
