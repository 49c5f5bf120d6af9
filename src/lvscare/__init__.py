"""lvscare: a node-local load balancer (IPVS or nftables) that keeps its rules honest.

It probes every real server, computes the weights they should have, reads what the kernel
actually holds and repairs the difference, every interval.
"""

__version__ = "0.1.0"
