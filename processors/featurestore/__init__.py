"""The feature store: approved features registered in Feast and served online.

    naming.py       repository folders, Feast project, view and field names (pure)
    config.py       FeatureStoreConfig and the Feast configuration it gives (embedded or production)
    plan.py         what a view's next version holds: the pure decision, with its versioning rule
    catalog.py      what the log says about a view's features
    values.py       the values served: each feature over its job's snapshot, as `afep apply` computes them
    definitions.py  a view as Feast objects and as the repository's readable features.py
    repository.py   one tenant project's repository on disk and the Feast calls on it
    sync.py         one reconciliation of a view with the log (the feature-store agent's work)
    online.py       online reads for the CLI and the API

Only repository.py, definitions.py and online.py import Feast, inside the functions that use it.
"""
