"""The `marathon` client library from PyPI (marathon-python), unmodified,
against the Marathon-style scheduler: every call parses the answer into the
library's own models, which refuse fields Marathon does not write and times
that are not Marathon's ISO 8601. Prints what it did; exits non-zero on the
first thing that does not hold."""

import collections
import collections.abc
import json
import pathlib
import sys
import threading
import time

# The library still names `collections.Iterable`, which Python 3.10
# removed; restoring the alias is the whole shim (its code is unchanged).
collections.Iterable = collections.abc.Iterable

import requests
from marathon import MarathonClient
from marathon.exceptions import NotFoundError
from marathon.models import MarathonApp, MarathonGroup

url = sys.argv[1]
client = MarathonClient(url)
APP = "/pyclient/web"

# The event bus, parsed by the library's EventFactory (an event type
# Marathon does not have, or a shape its models refuse, ends the stream
# with an error).
events, event_errors = [], []


def follow_events():
    try:
        for event in MarathonClient(url).event_stream():
            events.append(event)
    except Exception as e:  # noqa: BLE001 - reported below
        event_errors.append(repr(e))


threading.Thread(target=follow_events, daemon=True).start()


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

# Groups: created with an app inside, read back as the library's group
# model, listed, scaled by a factor, deleted whole.
GROUP = "/pygroup"
until("no deployment in progress", lambda: not client.list_deployments())
client.create_group(MarathonGroup(id=GROUP, apps=[MarathonApp(id=f"{GROUP}/db", cmd="exec sleep 600", cpus=0.05, mem=16, instances=1)]))
until("the group's app running", lambda: running(f"{GROUP}/db", 1))
group = client.get_group(GROUP)
assert group.id == GROUP and [a.id for a in group.apps] == [f"{GROUP}/db"], group
assert GROUP in [g.id for g in client.list_groups()] or any(GROUP in [c.id for c in g.groups] for g in client.list_groups())
until("no deployment in progress", lambda: not client.list_deployments())
client.scale_group(GROUP, 2)
until("the group scaled by two", lambda: running(f"{GROUP}/db", 2))
client.delete_group(GROUP, force=True)
until("the group gone", lambda: GROUP not in [g.id for g in client.get_group("/").groups])
print("group", GROUP, "created, scaled and deleted")

# Errors in Marathon's form, checked against the error schema the DC/OS
# CLI (PyPI `dcos`) validates Marathon's answers with.
import importlib.util  # noqa: E402

import jsonschema_rs  # noqa: E402

dcos_dir = pathlib.Path(importlib.util.find_spec("dcos").submodule_search_locations[0])
schema = json.loads((dcos_dir / "data/marathon/error.schema.json").read_text())
validator = jsonschema_rs.validator_for(schema)
try:
    client.get_app("/pyclient/nothing-here")
    raise SystemExit("an unknown app was found")
except NotFoundError:
    pass
answers = {
    404: requests.get(f"{url}/v2/apps/pyclient/nothing-here"),
    422: requests.post(f"{url}/v2/apps", json={"id": "/pyclient/bad", "cmd": "x", "cpus": -1}),
    400: requests.post(f"{url}/v2/apps", data="{not json", headers={"Content-Type": "application/json"}),
}
for status, r in answers.items():
    assert r.status_code == status, (status, r.status_code, r.text)
    validator.validate(r.json())
    print("error", status, "in Marathon's form:", r.json().get("message"))
details = answers[422].json().get("details")
assert details and all("path" in d and d["errors"] for d in details), answers[422].text

client.delete_app(APP, force=True)
until("the app gone", lambda: APP not in [a.id for a in client.list_apps()])

# What the event bus said, as the library's models.
deadline = time.time() + 20
while not any(e.event_type == "app_terminated_event" for e in events) and not event_errors:
    if time.time() > deadline:
        raise SystemExit(f"no app_terminated_event; saw {sorted({e.event_type for e in events})}")
    time.sleep(0.2)
assert not event_errors, event_errors
kinds = {e.event_type for e in events}
for kind in ["event_stream_attached", "api_post_event", "status_update_event", "deployment_info", "deployment_success", "group_change_success", "app_terminated_event"]:
    assert kind in kinds, (kind, sorted(kinds))
running_updates = [e for e in events if e.event_type == "status_update_event" and e.task_status == "TASK_RUNNING"]
assert running_updates and all(e.app_id and e.task_id and e.slave_id and e.host for e in running_updates), running_updates[:1]
print("events", len(events), sorted(kinds))
print("deleted")
