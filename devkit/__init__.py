"""Developer tools that never ship to hosts: the fault-injecting storage seam, the sanlock daemon
runner for interop tests, and the side-by-side benchmarks. The engine payload (``lockengine/``) and
the collection's tarball hold none of this."""
