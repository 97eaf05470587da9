"""The cluster flow: specs (validated options) -> render (Jinja2 manifests) -> kube (the only
module that calls the Kubernetes API) -> waits (deadlines, named reasons) -> deploy (start,
delete, the cluster handle, the image prepuller)."""
