"""`sealos package build` and `sealos package inspect`: an offline package from upstream releases.

sources.py (what to download for a version and arch), fetch.py (parallel, verified, cached
downloads), images.py (skopeo pulls), containerd_config.py (config.toml), layout.py (what goes
where in kube/), manifest.py (kube/manifest.json and inspect), archive.py (reproducible tar.gz),
build.py (all of it, in order), files/init.sh (the package's kube/shell/init.sh).
"""
