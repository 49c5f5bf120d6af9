"""The stand-in kube-apiserver that `kubeadm sealos-lab-apiserver` runs (the unit's ExecStart).

settings.py     what one apiserver serves as, read from its static pod manifest
store.py        the object store: last-writer-wins versions, tombstones, kubelet leases
auth.py         who sent a request (client certificates, bootstrap tokens); 401/403 errors
api.py          the served API: routes and their handlers
replication.py  masters share their state as etcd members would
server.py       HTTPS on 0.0.0.0:<bindPort>, and the command's entry point
"""
