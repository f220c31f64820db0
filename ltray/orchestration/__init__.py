"""What a sweep is and how it proceeds, without Ray: the sweep file (`spec`, `load`), where its
folder goes (`location`), its plan of trials and consensus groups (`plan`, `dry_run`), opening,
migrating and repairing the folder (`opening`, `migrate`, `repair`), one trial's work from its
resume state (`trial_work`), the consensus bookkeeping the actor hosts (`aggregator`,
`similarity`, `mask_cache`, `consensus_files`), progress (`progress_counts`, `console`) and the
summary (`summary`). `ltray.sweep` is the Ray shell around these; a test keeps Ray out of here.
"""
