"""A framework written with mesoshttp, an existing library for Mesos's v1
HTTP scheduler API: it subscribes, launches one command task on the first
offer, prints every state it is told about, and exits 0 once the task
finished (non-zero on any other end, or after 60 s)."""

import logging
import os
import sys
import threading

from mesoshttp.client import MesosClient

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"}

logging.basicConfig(level=logging.ERROR)
master = sys.argv[1]
client = MesosClient(mesos_urls=[master], frameworkName="mesoshttp-hello")
result = {"state": None}
launched = []


def on_offers(offers):
    for offer in offers:
        if launched:
            offer.decline()
            continue
        agent = offer.get_offer()["agent_id"]["value"]
        task = {
            "name": "hello",
            "task_id": {"value": "hello-mesoshttp"},
            "agent_id": {"value": agent},
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
            ],
            "command": {"value": "echo hello from mesoshttp"},
        }
        offer.accept([task])
        launched.append(task)


def on_update(update):
    state = update["status"]["state"]
    print(state, flush=True)
    if state in TERMINAL:
        result["state"] = state
        client.tearDown()


client.on(MesosClient.OFFERS, on_offers)
client.on(MesosClient.UPDATE, on_update)
watchdog = threading.Timer(60, lambda: (print("TIMEOUT", flush=True), os._exit(3)))
watchdog.daemon = True
watchdog.start()
client.register()
print("framework done:", result["state"], flush=True)
sys.exit(0 if result["state"] == "TASK_FINISHED" else 1)
