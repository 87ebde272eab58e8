// Figures (ours, baseline, ratio, target) and the table printed at the end.

/**
 * One figure. `better` says which way is good; `target` is the largest (lower-is-better) or
 * smallest (higher-is-better) allowed ratio ours/baseline, or an absolute bound via `targetAbs`.
 */
export function figure({ name, unit, ours, baseline, baselineName, better, target, targetAbs, roundsOurs, roundsBaseline, note }) {
  const ratio = Number.isFinite(ours) && Number.isFinite(baseline) && baseline !== 0 ? ours / baseline : null;
  let met = null;
  let targetText = '';
  if (targetAbs !== undefined) {
    targetText = `${better === 'lower' ? '<=' : '>='} ${targetAbs} ${unit}`;
    met = Number.isFinite(ours) ? (better === 'lower' ? ours <= targetAbs : ours >= targetAbs) : false;
  } else if (target !== undefined) {
    targetText = `${better === 'lower' ? '<=' : '>='} ${target}x`;
    if (ratio !== null) met = better === 'lower' ? ratio <= target : ratio >= target;
    else if (!Number.isFinite(ours) && Number.isFinite(baseline)) met = false; // ours could not be measured
  }
  return {
    name,
    unit,
    ours: round(ours),
    baseline: round(baseline),
    baselineName: baselineName ?? null,
    ratio: ratio === null ? null : round(ratio, 3),
    better,
    target: targetText || null,
    met,
    rounds: roundsOurs || roundsBaseline ? { ours: roundsOurs?.map((x) => round(x)), baseline: roundsBaseline?.map((x) => round(x)) } : undefined,
    note,
  };
}

export function round(x, digits) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x ?? null;
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : Math.abs(x) >= 1 ? 2 : 3);
  return Number(x.toFixed(d));
}

const fmt = (x) => (x === null || x === undefined || Number.isNaN(x) ? '-' : String(x));

export function printTable(results, write = (s) => process.stdout.write(s)) {
  const rows = [['scenario', 'figure', 'ours', 'baseline', 'ratio', 'target', 'met']];
  for (const r of results) {
    if (r.skipped) {
      rows.push([r.scenario, `skipped: ${r.skipped}`, '', '', '', '', '']);
      continue;
    }
    for (const f of r.figures) {
      rows.push([
        r.scenario,
        `${f.name} (${f.unit})`,
        fmt(f.ours),
        f.baseline === null || f.baseline === undefined ? '-' : `${fmt(f.baseline)} ${f.baselineName ? `[${f.baselineName}]` : ''}`.trim(),
        f.ratio === null ? '-' : `${f.ratio}x`,
        f.target ?? '',
        f.met === null ? '' : f.met ? 'yes' : 'NO',
      ]);
    }
    const mem = (r.memory ?? []).map((m) => `${m.process} ${m.peakRssMiB} MiB`).join(', ');
    if (mem) rows.push([r.scenario, `peak RSS: ${mem}`, '', '', '', '', '']);
  }
  const widths = rows[0].map((_, i) => Math.min(i === 1 ? 70 : 40, Math.max(...rows.map((r) => String(r[i]).length))));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  write(`\n${line(rows[0])}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const r of rows.slice(1)) write(`${line(r)}\n`);
  for (const r of results) for (const n of r.notes ?? []) write(`note [${r.scenario}]: ${n}\n`);
}
