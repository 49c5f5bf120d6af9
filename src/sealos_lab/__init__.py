"""The local lab: real SSH hosts on one machine, a VM runner for real IPVS, and an offline package
with stand-ins for Kubernetes' binaries. Test and demo tooling; never imported by sealos or lvscare.
"""
