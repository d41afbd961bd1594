"""The `marathon` client library from PyPI (marathon-python), unmodified,
against the Marathon-style scheduler: every call parses the answer into the
library's own models, which refuse fields Marathon does not write and times
that are not Marathon's ISO 8601. Prints what it did; exits non-zero on the
first thing that does not hold."""

import sys
import time

from marathon import MarathonClient
from marathon.models import MarathonApp

url = sys.argv[1]
client = MarathonClient(url)
APP = "/pyclient/web"


def until(what, check, within=60):
    deadline = time.time() + within
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def running(app_id, n):
    app = client.get_app(app_id, embed_tasks=True)
    ready = [t for t in app.tasks if t.state == "TASK_RUNNING" and t.started_at is not None]
    return app if len(ready) == n and app.tasks_running == n else None


# No nested objects in what is sent: the library's encoder reaches for
# `collections.Iterable` on them, which Python 3.10 removed. The app gets
# Marathon's default port definition, `[{"port": 0}]`, so a service port.
app = client.create_app(APP, MarathonApp(cmd="exec sleep 600", cpus=0.05, mem=16, instances=2, labels={"team": "py"}))
assert app and app.id == APP, app
print("created", app.id)

app = until("two running tasks", lambda: running(APP, 2))
service_port = app.port_definitions[0].port
assert 10000 <= service_port <= 20000, f"service port {service_port}"
for task in app.tasks:
    assert task.staged_at is not None and task.started_at >= task.staged_at, task
    assert task.service_ports == [service_port], task.service_ports
    assert len(task.ports) == 1 and task.ports[0] != service_port, task.ports
    assert task.slave_id and task.host and task.version == app.version, task
print("running with service port", service_port, "started at", app.tasks[0].started_at.isoformat())

assert APP in [a.id for a in client.list_apps()]
tasks = client.list_tasks(APP)
assert len(tasks) == 2 and all(t.app_id == APP for t in tasks), tasks

# Scale up, then kill one task with scale: back to two.
client.scale_app(APP, instances=3)
until("three running tasks", lambda: running(APP, 3))
victim = client.list_tasks(APP)[0]
killed = client.kill_task(APP, victim.id, scale=True)
print("killed", victim.id, "->", killed)
until("two running tasks after the kill", lambda: running(APP, 2))
# The killed task is listed (as killing) until its end is reported.
until("the killed task gone", lambda: victim.id not in [t.id for t in client.list_tasks(APP)])
assert client.get_app(APP).instances == 2
# Without scale the task comes back as the library's task model, and a
# replacement is launched.
victim = client.list_tasks(APP)[0]
killed = client.kill_task(APP, victim.id)
assert killed.id == victim.id and killed.app_id == APP, killed
until("a replacement running", lambda: running(APP, 2) and victim.id not in [t.id for t in client.list_tasks(APP)])
queue = client.list_queue()
assert all(item.app.id for item in queue), "queue items name their apps"
print("queue items", len(queue))

# A restart replaces every task (once the scale's deployment is done: a
# change to an app a deployment holds is a 409, as in Marathon); an update
# with force while the restart deploys.
until("no deployment in progress", lambda: not client.list_deployments())
client.restart_app(APP)
client.update_app(APP, MarathonApp(cmd="exec sleep 601"), force=True)
app = until("the updated app running", lambda: running(APP, 2))
assert app.cmd == "exec sleep 601", app.cmd
assert app.version_info is not None and app.version_info.last_config_change_at is not None
# Several apps at once: a partial update of this one, and a new one (once
# the update's deployment is done, or it is a 409).
until("no deployment in progress", lambda: not client.list_deployments())
OTHER = "/pyclient/other"
client.update_apps([MarathonApp(id=APP, instances=3), MarathonApp(id=OTHER, cmd="exec sleep 600", cpus=0.05, mem=16, instances=1)])
until("the bulk update applied", lambda: running(APP, 3) and running(OTHER, 1))
other_port = client.get_app(OTHER).port_definitions[0].port
assert other_port != service_port, (other_port, service_port)
client.delete_app(OTHER, force=True)
versions = client.list_versions(APP)
assert len(versions) >= 2, versions
print("versions", len(versions))

deployments = client.list_deployments()
print("deployments", len(deployments))
assert client.get_info() is not None
assert client.get_leader() is not None

client.delete_app(APP, force=True)
until("the app gone", lambda: APP not in [a.id for a in client.list_apps()])
print("deleted")
