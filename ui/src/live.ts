// Follows /api/topology/{view}/ws: a reset, then {add, update, remove}
// diffs. Reconnects with exponential backoff and jitter (0.5 s doubling to
// 10 s); every reconnect starts with a reset, so nothing is missed.

import { Diff, wsUrl } from './api';

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
      if (this.attempt !== 0 || ev.data === undefined) this.attempt = 0;
      let d: Diff;
      try {
        d = JSON.parse(ev.data as string) as Diff;
      } catch {
        return;
      }
      this.onState('live');
      this.onDiff(d);
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
