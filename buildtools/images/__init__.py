"""The image flow: images/<name>/image.toml -> config -> plan -> build (buildx, the only module
that calls the engine: engine) -> sizes (registry, OCI layouts) -> budgets -> report; plus the
offline base mirror and the selection of what a git diff affects (changed)."""
