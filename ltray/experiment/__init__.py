"""The experiment folder, as a format: where it lives (`storage`), its names (`layout`), its ids
(`ids`), its tables (`schemas`, `tables`), plan.json (`plan_file`), a trial's own files
(`records`), the consensus actor's journal (`journal`), the driver's lease (`lease`), and
creating or reopening a folder (`folder`). Ray-free; everything else asks these modules.
"""
