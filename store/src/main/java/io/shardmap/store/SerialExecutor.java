package io.shardmap.store;

import java.util.ArrayDeque;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;

/**
 * Runs submitted tasks one at a time, in submission order, on a shared delegate executor. This is
 * what makes the listener calls of one watch never overlap and arrive in order while many watches
 * share one thread pool.
 *
 * <p>A task that throws does not break the chain: the next task still runs. Tasks submitted after the
 * delegate was shut down are dropped (the owner is closing).
 */
final class SerialExecutor implements Executor {

  /** Tasks run per turn before yielding the delegate thread to other serial queues. */
  private static final int TASKS_PER_TURN = 64;

  private final Executor delegate;
  private final ArrayDeque<Runnable> tasks = new ArrayDeque<>();
  private boolean running;

  SerialExecutor(Executor delegate) {
    this.delegate = delegate;
  }

  @Override
  public void execute(Runnable task) {
    synchronized (this) {
      tasks.add(task);
      if (running) {
        return;
      }
      running = true;
    }
    submitTurn();
  }

  private void submitTurn() {
    try {
      delegate.execute(this::runTurn);
    } catch (RejectedExecutionException shutDown) {
      synchronized (this) {
        tasks.clear();
        running = false;
      }
    }
  }

  private void runTurn() {
    // This turn owns running == true until it either finds the queue empty or hands the queue to a
    // new turn; exactly one turn is active at any time, which is the no-overlap guarantee.
    for (int n = 0; n < TASKS_PER_TURN; n++) {
      Runnable next;
      synchronized (this) {
        next = tasks.poll();
        if (next == null) {
          running = false;
          return;
        }
      }
      boolean completed = false;
      try {
        next.run();
        completed = true;
      } finally {
        if (!completed) {
          submitTurn();
        }
      }
    }
    submitTurn();
  }
}
