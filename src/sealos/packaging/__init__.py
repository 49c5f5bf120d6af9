"""`sealos package build` and `sealos package inspect`: an offline package from upstream releases.

sources.py (what to download for a version and arch), fetch.py (parallel, verified, cached
downloads), images.py (skopeo pulls), containerd_config.py (config.toml), archive.py
(reproducible tar.gz), manifest.py (kube/manifest.json and inspect), build.py (all of it).
"""
