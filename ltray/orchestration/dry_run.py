"""Human-readable plan for --dry-run: trajectories, rounds, follow-ups per group, device-hours."""

from __future__ import annotations

from collections import Counter

from ltray.orchestration.plan import Plan, estimate_device_hours


def format_plan(plan: Plan, location: str) -> str:
    sweep = plan.sweep
    lines = [f"sweep {sweep.name!r}: experiment folder {location}"]
    n = len(plan.trajectories)
    lines.append(f"bespoke trajectories: {n} ({len(sweep.grid.tasks)} tasks x {len(sweep.grid.archs)} archs x "
                 f"{len(sweep.grid.techniques)} techniques x {len(sweep.grid.seeds)} seeds), "
                 f"{sweep.rounds} rounds of {sweep.train.epochs} epochs each = {n * sweep.rounds} trained rounds")
    by_arch = Counter(t.labels.arch for t in plan.trajectories)
    for arch, count in sorted(by_arch.items()):
        r = sweep.resources_for(arch)
        lines.append(f"  {arch}: {count} trajectories, {r.cpu:g} CPU + {r.gpu:g} GPU per trial")
    lines.append(f"consensus groups: {len(plan.groups)}; follow-up trials at most {plan.max_followups()}")
    by_name: dict[str, list] = {}
    for g in plan.groups:
        by_name.setdefault(g.name, []).append(g)
    for name, groups in by_name.items():
        g = groups[0]
        rounds = sorted({x.source_round for x in groups})
        lines.append(f"  {name}: {len(groups)} instances (arch x seed x source round {rounds}), each "
                     f"{len(g.sources)} sources ({', '.join(g.sources)}), thresholds {list(g.thresholds)}, "
                     f"{len(g.targets)} targets ({len(set(g.targets) - set(g.sources))} held out) "
                     f"-> {g.max_followups()} follow-ups each")
    lines.append(f"estimated device time: {estimate_device_hours(plan):,.2f} GPU-hours "
                 "(rough: reference throughputs in ltray/orchestration/plan.py)")
    lines.append(f"concurrency: {sweep.max_concurrent} trials running or pending; retries per trial: {sweep.max_failures}")
    return "\n".join(lines)
