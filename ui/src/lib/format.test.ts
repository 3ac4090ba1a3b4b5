import { describe, expect, it } from 'vitest';
import { age, clock, duration, fromLocalInput, nextStatus, statusVerb, streamText, streamTone, ticks } from './format';

describe('age', () => {
  const t0 = Date.UTC(2026, 10, 27, 3, 0, 0);
  it('reads at a glance at every scale', () => {
    expect(age(t0, t0 + 42_000)).toBe('42 s');
    expect(age(t0, t0 + 12 * 60_000)).toBe('12 min');
    expect(age(t0, t0 + (3 * 60 + 5) * 60_000)).toBe('3 h 05 min');
    expect(age(t0, t0 + (2 * 24 + 4) * 3_600_000)).toBe('2 d 4 h');
  });
  it('never shows a negative age when clocks disagree', () => {
    expect(age(t0 + 5_000, t0)).toBe('0 s');
  });
});

describe('status flow', () => {
  it('offers the next step forward and nothing after resolved', () => {
    expect(nextStatus('open')).toBe('acknowledged');
    expect(nextStatus('acknowledged')).toBe('mitigated');
    expect(nextStatus('mitigated')).toBe('resolved');
    expect(nextStatus('resolved')).toBeNull();
    expect(statusVerb('acknowledged')).toBe('Acknowledge');
  });
});

describe('stream state words', () => {
  const now = 1_000_000;
  it('says where each cluster stands, with numbers', () => {
    expect(streamText({ state: 'live', head: 5 }, now)).toBe('live');
    expect(streamText({ state: 'catching_up', behind: 1240 }, now)).toBe('catching up, 1,240 behind');
    expect(streamText({ state: 'reconnecting', attempt: 3, retryAtMs: now + 3_200, reason: 'connection reset' }, now)).toBe(
      'reconnecting in 4 s (attempt 3): connection reset',
    );
    expect(streamText({ state: 'failed', reason: '401 Unauthorized' }, now)).toBe('failed: 401 Unauthorized');
  });
  it('colours by urgency', () => {
    expect(streamTone({ state: 'live', head: 1 })).toBe('live');
    expect(streamTone({ state: 'connecting' })).toBe('busy');
    expect(streamTone({ state: 'failed', reason: 'x' })).toBe('down');
  });
});

describe('review figures and times', () => {
  it('writes durations the way the reports do', () => {
    expect(duration(null)).toBe('—');
    expect(duration(45)).toBe('45 s');
    expect(duration(12 * 60 + 5)).toBe('12 min 05 s');
    expect(duration(3 * 3600 + 20 * 60)).toBe('3 h 20 min');
  });
  it('reads back a time as the timeline writes it, to the second', () => {
    const t = Date.UTC(2026, 10, 28, 4, 5, 6);
    expect(fromLocalInput(clock(t))).toBe(t);
    expect(fromLocalInput('')).toBeNull();
    expect(fromLocalInput('not a time')).toBeNull();
    expect(fromLocalInput('2026-02-30 10:00')).toBeNull();
    const local = new Date(2026, 10, 28, 4, 5, 41).getTime();
    expect(fromLocalInput('2026-11-28 04:05:41')).toBe(local);
    expect(fromLocalInput('2026-11-28 04:05')).toBe(local - 41_000);
  });
});

describe('ticks', () => {
  it('are round and cover the maximum, as the reports draw them', () => {
    expect(ticks(14)).toEqual([0, 5, 10, 15]);
    expect(ticks(4)).toEqual([0, 1, 2, 3, 4]);
    expect(ticks(0)).toEqual([0, 1]);
    expect(ticks(0.9)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(2390).at(-1)).toBe(2500);
  });
});
