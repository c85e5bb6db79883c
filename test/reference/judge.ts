import type { Difference } from './deliberate-differences';

/** Counts per suite: how many vectors ran, agreed, and matched each deliberate difference. */
export function judge<Case>(cases: Case[], agrees: (c: Case) => boolean, differences: Difference<Case>[]) {
  const byRule: Record<string, number> = {};
  const unexplained: Case[] = [];
  let agreed = 0;
  for (const c of cases) {
    if (agrees(c)) {
      agreed++;
      continue;
    }
    const row = differences.find((d) => d.matches(c));
    if (row) byRule[row.rule] = (byRule[row.rule] ?? 0) + 1;
    else unexplained.push(c);
  }
  return { applied: cases.length, agreed, byRule, unexplained };
}
