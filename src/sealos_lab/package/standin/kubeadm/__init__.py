"""The kubeadm stand-in, one module per subcommand; dispatch.py picks the one that runs.

Subcommands:
- dispatch.py: the command line (subcommand words, error printing) and `kubeadm version`
- init.py: `kubeadm init`
- join.py: `kubeadm join`, worker or control plane
- join_control_plane.py: what `join --control-plane` adds (certs, manifests, the apiserver)
- discovery.py: join's token discovery (cluster-info, JWS signature, CA pin)
- token.py: `kubeadm token create|list|delete`, and the join command
- phases.py: `kubeadm init phase upload-certs`
- reset.py: `kubeadm reset`

Flags and config:
- flags.py: each subcommand's flags in this release; mixing --config with flags
- plans.py: InitPlan and JoinPlan, kubeadm's defaults, the checks both plans share
- init_config.py: init's settings from flags or --config, and their checks
- join_config.py: join's settings from flags or --config, and their checks

Steps init and join share:
- preflight.py: the host checks before init and join
- certs.py: the PKI and kubeconfigs init and join write, the kubeadm-certs bundle
- control_plane.py: static pod manifests, the apiserver unit, control-plane label and taints
- kubelet_start.py: the kubelet's flags and config, starting it, its TLS bootstrap
- common.py: host paths, output, KubeadmFailure, waiting, --config, the admin client
"""
