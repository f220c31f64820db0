"""Human-readable plan for --dry-run: trajectories, rounds, follow-ups per group, device-hours."""

from __future__ import annotations

from collections import Counter

from ltray.sweep.plan import Plan, estimate_device_hours


def format_plan(plan: Plan) -> str:
    sweep = plan.sweep
    lines = [f"sweep {sweep.name!r}: experiment folder {sweep.storage}/{sweep.name}"]
    n = len(plan.trajectories)
    lines.append(f"bespoke trajectories: {n} ({len(sweep.grid.tasks)} tasks x {len(sweep.grid.archs)} archs x "
                 f"{len(sweep.grid.techniques)} techniques x {len(sweep.grid.seeds)} seeds), "
                 f"{sweep.rounds} rounds of {sweep.train.epochs} epochs each = {n * sweep.rounds} trained rounds")
    by_arch = Counter(t.labels["arch"] for t in plan.trajectories)
    for arch, count in sorted(by_arch.items()):
        r = sweep.resources_for(arch)
        lines.append(f"  {arch}: {count} trajectories, {r.cpu:g} CPU + {r.gpu:g} GPU per trial")
    lines.append(f"consensus groups: {len(plan.groups)}; follow-up trials at most {plan.max_followups()}")
    for g in plan.groups:
        lines.append(f"  {g.group_id}: {len(g.sources)} sources at round {g.source_round}, thresholds "
                     f"{list(g.thresholds)}, {len(g.targets)} targets -> {g.max_followups()} follow-ups")
    lines.append(f"estimated device time: {estimate_device_hours(plan):,.1f} GPU-hours "
                 "(rough: reference throughputs in ltray/sweep/plan.py)")
    lines.append(f"concurrency: {sweep.max_concurrent} trials running or pending; retries per trial: {sweep.max_failures}")
    return "\n".join(lines)
