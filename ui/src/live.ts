// Follows /api/topology/{view}/ws: a reset, then {add, update, remove}
// diffs. Reconnects with exponential backoff and jitter (0.5 s doubling to
// 10 s); every reconnect starts with a reset, so nothing is missed.

import { Diff, wsUrl } from './api';

/** Main-thread time spent on live messages (parse and apply), for the benchmark. */
export const liveStats = { messages: 0, messageMs: 0, updated: 0 };

export type ConnState = 'connecting' | 'live' | 'paused' | 'disconnected';

export class Live {
  private ws: WebSocket | null = null;
  private path = '';
  private attempt = 0;
  private timer: number | undefined;
  private closedByUs = false;

  constructor(
    private onDiff: (d: Diff) => void,
    private onState: (s: ConnState, detail?: string) => void,
  ) {}

  follow(path: string): void {
    this.stop();
    this.path = path;
    this.attempt = 0;
    this.open();
  }

  stop(): void {
    this.closedByUs = true;
    window.clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
    }
    this.ws = null;
  }

  private open(): void {
    this.closedByUs = false;
    this.onState('connecting');
    let ws: WebSocket;
    try {
      ws = new WebSocket(wsUrl(this.path));
    } catch {
      this.retry('could not open the live socket');
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      const t0 = performance.now();
      this.attempt = 0;
      let d: Diff;
      try {
        d = JSON.parse(ev.data as string) as Diff;
      } catch {
        return;
      }
      this.onState('live');
      this.onDiff(d);
      liveStats.messages++;
      liveStats.updated += (d.update?.length ?? 0) + (d.add?.length ?? 0) + (d.remove?.length ?? 0);
      liveStats.messageMs += performance.now() - t0;
    };
    ws.onopen = () => this.onState('live');
    ws.onclose = () => {
      if (this.closedByUs || this.ws !== ws) return;
      this.retry('the app server went away');
    };
  }

  private retry(why: string): void {
    this.ws = null;
    const delay = Math.min(10_000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.onState('disconnected', `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.timer = window.setTimeout(() => this.open(), delay);
  }
}
