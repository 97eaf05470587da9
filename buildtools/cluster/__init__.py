"""The cluster flow: specs (the validated ClusterSpec and PrepullSpec models, over the image
contract, the label scheme and Kubernetes value types) -> render (Jinja2 manifests) -> kube
(the only module that calls the Kubernetes API) -> waits (deadlines, named reasons) -> deploy
(start, attach, delete, the image prepuller) -> handle (DaskCluster, a distributed.deploy.Cluster:
Client, scale, adapt, logs, close)."""
