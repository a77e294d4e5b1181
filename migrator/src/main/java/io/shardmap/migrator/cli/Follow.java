package io.shardmap.migrator.cli;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.migrator.Migrator;
import io.shardmap.migrator.internal.States;
import io.shardmap.proto.v1.Migration;
import io.shardmap.support.cli.Durations;
import io.shardmap.support.cli.ExitCode;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs a migration to its end from the command line: drives it in this process when nobody holds it, and
 * otherwise follows the worker that does (reading its record every half second) until that worker
 * finishes or its lease expires, then drives it here.
 *
 * <p>A first SIGINT or SIGTERM stops driving at the next step boundary: the step in progress ends, is
 * persisted, and the migration is handed back at once (a worker or {@code resume} continues it).
 */
final class Follow {
  static final Duration POLL = Duration.ofMillis(500);
  /** A drive that keeps losing its claim without anyone holding the migration is given up after this many. */
  private static final int MAX_LOST_CLAIMS = 10;

  private Follow() {}

  /**
   * Returns the migration's final record (DONE or CANCELLED).
   *
   * @param liveOwnerLimit how long another worker may hold the migration (alive: its lease keeps being
   *     renewed) before this gives up with ABORTED naming it; null to follow that worker to the end
   */
  static Migration untilEnd(MigratorCli cli, Migrator migrator, String id, Progress progress,
      Duration liveOwnerLimit) {
    AtomicInteger signal = new AtomicInteger();
    Signals.Handle handle = cli.signals.onStop(s -> {
      signal.set(s);
      synchronized (progress) {
        progress.finish();
        cli.err.println("stopping after the current step (" + signalName(s) + " again quits at once; the migration "
            + "is then taken over when its lease expires)");
        cli.err.flush();
      }
    });
    try {
      String owner = "";
      long ownerSince = 0;
      int lostClaims = 0;
      while (true) {
        Migration s = migrator.status(id);
        if (States.terminal(s.getState())) {
          progress.show(s);
          progress.finish();
          return s;
        }
        if (signal.get() != 0) {
          throw stopped(id, s, signal.get(), false);
        }
        if (s.getOwner().isEmpty()) {
          try {
            // A signal stops the drive at the next step boundary; Migrator then hands the migration back.
            Migration end = migrator.drive(id, progress::show, Duration.ZERO, () -> signal.get() != 0);
            progress.show(end);
            progress.finish();
            if (!States.terminal(end.getState())) {
              throw stopped(id, end, signal.get(), true);
            }
            return end;
          } catch (ShardmapException e) {
            progress.finish();
            if (e.code() == ErrorCode.ABORTED && ++lostClaims <= MAX_LOST_CLAIMS) {
              // Another worker claimed it first, or took it over from us: follow that one.
              continue;
            }
            throw withHint(e, id, progress.last() != null ? progress.last() : s);
          }
        }
        if (!s.getOwner().equals(owner)) {
          owner = s.getOwner();
          ownerSince = System.nanoTime();
        }
        long heldMs = (System.nanoTime() - ownerSince) / 1_000_000;
        if (liveOwnerLimit != null && heldMs > liveOwnerLimit.toMillis()) {
          progress.finish();
          throw new ShardmapException(ErrorCode.ABORTED, "id: migration '" + id + "' is held by worker '" + owner
              + "', which is alive (its lease was still held after " + Durations.human(heldMs) + "); follow it with "
              + "'migrator status " + id + "', or stop that worker first");
        }
        progress.show(s, liveOwnerLimit == null ? "driven by worker " + owner
            : "held by worker " + owner + "; waiting up to " + Durations.human(liveOwnerLimit.toMillis())
                + " for it to finish or its lease to expire");
        sleep(POLL);
      }
    } finally {
      handle.close();
    }
  }

  private static MigratorCli.Ended stopped(String id, Migration at, int signal, boolean handedBack) {
    return new MigratorCli.Ended("stopped", ExitCode.ofSignal(signal), "stopped by " + signalName(signal)
        + ": migration '" + id + "' is " + Show.state(at) + (handedBack ? " and was handed back after its last step" : "")
        + "; continue it with 'migrator resume " + id + "' or a 'migrator worker'");
  }

  static String signalName(int signal) {
    return switch (signal) {
      case 2 -> "SIGINT";
      case 15 -> "SIGTERM";
      default -> "signal " + signal;
    };
  }

  /** A failure of a drive, with what it means for the migration and how to go on. */
  private static ShardmapException withHint(ShardmapException e, String id, Migration at) {
    String hint = switch (e.code()) {
      case UNAVAILABLE, DEADLINE_EXCEEDED -> "; migration '" + id + "' stays " + Show.state(at)
          + ": continue it with 'migrator resume " + id + "' once etcd and the shards are reachable";
      case ABORTED -> "; migration '" + id + "' stays " + Show.state(at) + ": see 'migrator status " + id + "'";
      default -> "";
    };
    return hint.isEmpty() ? e : new ShardmapException(e.code(), e.getMessage() + hint, e);
  }

  private static void sleep(Duration d) {
    try {
      Thread.sleep(d.toMillis());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ShardmapException(ErrorCode.UNAVAILABLE, "interrupted");
    }
  }
}
