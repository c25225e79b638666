"""Running the real sanlock beside lockengine: for interop tests and side-by-side benchmarks."""
