// Group commit for the PostgreSQL store. Every enqueue changes the same counter rows, so two
// transactions that enqueue at once wait for each other's commit: at 16 concurrent senders
// each would pay for fifteen commits before its own. Instead, calls that arrive while a
// group is being written wait, and go together in the next one, which grows with the load.

/** What a group's work returns for each job: its value, or the error that refuses it alone. */
export type JobResult<R> = { value: R } | { error: unknown };

interface Waiting<J, R> {
  job: J;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

export class CommitGroup<J, R> {
  private waiting: Waiting<J, R>[] = [];
  private running: Promise<void> | null = null;

  /**
   * `write` runs the jobs in one transaction. Should the transaction fail, every job runs
   * again alone, so the one that cannot be written is refused by itself.
   */
  constructor(private readonly write: (jobs: J[]) => Promise<JobResult<R>[]>) {}

  submit(job: J): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ job, resolve, reject });
      if (this.running === null) this.running = this.drain();
    });
  }

  /** Resolves once every job submitted so far is written or refused. */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private async drain(): Promise<void> {
    // The jobs of this turn of the event loop join the first group.
    await new Promise((resolve) => setImmediate(resolve));

    while (this.waiting.length > 0) {
      const group = this.waiting;
      this.waiting = [];
      await this.run(group);
    }
    this.running = null;
  }

  private async run(group: Waiting<J, R>[]): Promise<void> {
    let results: JobResult<R>[];
    try {
      results = await this.write(group.map((w) => w.job));
    } catch (err) {
      if (group.length === 1) {
        group[0]?.reject(err);
        return;
      }
      for (const one of group) await this.run([one]);
      return;
    }

    for (const [i, waiting] of group.entries()) {
      const result = results[i];
      if (result === undefined) waiting.reject(new Error('commit group lost a job'));
      else if ('error' in result) waiting.reject(result.error);
      else waiting.resolve(result.value);
    }
  }
}
