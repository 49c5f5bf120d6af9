"""The stand-in kube-apiserver that `kubeadm sealos-lab-apiserver` runs (the unit's ExecStart).

- settings.py: what one apiserver serves as, read from its static pod manifest
- store.py: the objects (last-writer-wins versions, tombstones) and kubelet leases
- auth.py: who sent a request (client certificates, bootstrap tokens); 401 and 403
- api.py: the served API, its routes and their handlers
- replication.py: masters share their state as etcd members would
- server.py: HTTPS on 0.0.0.0:<bindPort>, and the command's entry point
"""
