"""The tests' helpers, one module per topic. Import a name from its topic module
(``from tests.helpers.loopback import wait_until``), never from this package, which exports
nothing: one place per helper, found by its topic.

- ``repository``: the repository's path and the binaries the tests drive (fail, never skip).
- ``ontap``: ONTAP's answers (AKV records, policy, volumes, EMS events) and NetApp's schema.
- ``fake_ontap``: FakeOntap, an ONTAP stand-in whose answers a test sets (conftest serves it).
- ``simulator``: the simulator's REST dialect and control API.
- ``configs``: configurations written and parsed, ClusterConfig built directly.
- ``exposition``: reading /metrics, the status document's schema, a check's perfdata.
- ``exporter``: the exporter in the test's event loop on loopback; `check` as a process.
- ``loopback``: free ports, plain HTTP, waiting for a condition (never a fixed sleep).
- ``fleet``: the simulated fleet and an exporter polling it, in a background loop.
- ``processes``: `akv-exporter run` as real processes (sharding, high availability).
- ``prometheus``: Debian's Prometheus and Alertmanager, a webhook receiver, shortened rules.
- ``browser``: Chromium's flags and a watch for CSP violations.

Fixtures live in tests/conftest.py (and module-scoped ones in the test module that shares them).
A new helper goes into the module of its topic; a new topic is a new module listed here.
"""
