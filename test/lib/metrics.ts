// Reading /metrics in the tests: one sample's value, and Debian's
// `promtool check metrics` (format and lint) on the text.

import { spawnSync } from 'node:child_process'
import type { AssertLike } from './ugate.js'

/** The value of the sample line `name{labels}` in exposition text, or undefined. */
export function sample(text: string, line: string): number | undefined {
  const l = text.split('\n').find((x) => x.startsWith(`${line} `))
  return l === undefined ? undefined : Number(l.slice(line.length + 1))
}

/** `promtool check metrics` accepts the text without a lint finding. */
export function checkMetrics(t: AssertLike, text: string, what = ''): void {
  const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  const of = what === '' ? '' : ` (${what})`
  t.equal(check.status, 0, `promtool check metrics${of}`, { stdout: check.stdout, stderr: check.stderr })
  t.equal(check.stdout + check.stderr, '', `no lint findings${of}`)
}

/** The cumulative buckets [le, count] of histogram `name`'s series `labels` (e.g. `listener="dns"`), in order. */
export function buckets(text: string, name: string, labels: string): Array<[number, number]> {
  const prefix = `${name}_bucket{${labels},le="`
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix))
    .map((l) => {
      const [le, value] = l.slice(prefix.length).split('"} ')
      return [le === '+Inf' ? Infinity : Number(le), Number(value)]
    })
}

/**
 * What PromQL's histogram_quantile(q, …) answers for one series' buckets
 * (Prometheus' bucketQuantile: linear within the bucket that holds rank
 * q × count; the largest finite bound when that is +Inf).
 */
export function histogramQuantile(q: number, b: Array<[number, number]>): number {
  const observations = b[b.length - 1]![1]
  if (observations === 0) return NaN
  const rank = q * observations
  const i = b.findIndex(([, n]) => n >= rank)
  if (i === b.length - 1) return b[b.length - 2]![0]
  const start = i === 0 ? 0 : b[i - 1]![0]
  const below = i === 0 ? 0 : b[i - 1]![1]
  return start + (b[i]![0] - start) * ((rank - below) / (b[i]![1] - below))
}
