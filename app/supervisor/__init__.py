"""`modeldepot serve`: start the registry and the inference server, watch them, stop them.

Standard library only, and nothing heavy: this package must not import Flask, FastAPI,
scikit-learn or numpy, so the supervisor starts in a few tens of milliseconds and stays small
while its children carry the weight.

    commands.py    run_serve / run_stop (and run_status from status.py), what the CLI calls
    status.py      `modeldepot status`: server.json, health, versions, disk use
    loop.py        the watch loop: start, health-check, restart with backoff, stop
    children.py    child specs and process handling (process groups, PR_SET_PDEATHSIG)
    parentwatch.py called inside children: exit when the supervisor is gone
    health.py      stdlib HTTP health probes
    lock.py        single-instance lock in the data dir
    discovery.py   server.json, written atomically
    notify.py      sd_notify over $NOTIFY_SOCKET
    browser.py     open the dashboard
"""
