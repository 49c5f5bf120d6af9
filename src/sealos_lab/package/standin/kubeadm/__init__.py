"""The kubeadm stand-in, one module per subcommand (dispatch.py picks the one that runs).

dispatch.py       the command line: subcommand words, flag tables, error printing, version
flags.py          each subcommand's flags in this release; mixing --config with flags
plans.py          InitPlan / JoinPlan, kubeadm's defaults, the checks both plans share
init_config.py    init's settings from flags or --config, and their checks
join_config.py    join's settings from flags or --config, and their checks
preflight.py      the host checks before init and join
init.py           `kubeadm init`
discovery.py      join's token discovery (cluster-info, JWS, CA pin)
join.py           `kubeadm join`, worker or control plane
token.py          `kubeadm token create|list|delete`, the join command
phases.py         `kubeadm init phase upload-certs`
reset.py          `kubeadm reset`
certs.py          the PKI and kubeconfigs init and join write, the kubeadm-certs bundle
control_plane.py  static pod manifests, the apiserver unit, control-plane label and taints
kubelet_start.py  the kubelet's flags and config, starting its service
common.py         host paths, output, KubeadmFailure, waiting, --config, the admin client
"""
