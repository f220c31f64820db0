"""The Ray shell: `python -m ltray.sweep` (`__main__`), the driver (`run`, `connect`), Tune's
searcher, trainable and callback (`searcher`, `trainable`, `callback`), the consensus actor
(`actor`), the progress reporter (`progress`), metrics (`metrics`) and tracker callbacks
(`trackers/`). Each wraps a Ray-free part of `ltray.orchestration`.
"""
