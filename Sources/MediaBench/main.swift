print("MediaBench: see Sources/MediaBench")
