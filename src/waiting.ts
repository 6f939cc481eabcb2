// What a shutdown still waits for: each step is tracked under a name until it
// settles, so a shutdown that runs out of time can say which steps hung.

/** A step's name; a function is read when the list is asked for (the step's state may change). */
export type StepName = string | (() => string);

export type Track = <T>(name: StepName, step: Promise<T>) => Promise<T>;

export class Waiting {
  private readonly steps = new Set<StepName>();

  /** Tracks `step` until it settles; returns it unchanged. */
  readonly track: Track = (name, step) => {
    this.steps.add(name);
    const done = () => void this.steps.delete(name);
    step.then(done, done);
    return step;
  };

  /** The names of the steps not yet settled. */
  list(): string[] {
    return [...this.steps].map((n) => (typeof n === 'function' ? n() : n));
  }
}

/** True once `step` settles before `until` (epoch ms), false when the time runs out first (the step goes on). */
export function settlesBy(step: Promise<unknown>, until: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, until - Date.now()));
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    step.then(done, done);
  });
}
