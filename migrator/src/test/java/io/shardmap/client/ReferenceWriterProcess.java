package io.shardmap.client;

import io.shardmap.client.internal.txn.TxnCoordinator.Step;
import io.shardmap.client.internal.txn.TxnCoordinator.Steps;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.TxnId;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The coordinator process of {@code io.shardmap.migrator.ReferenceWritesUnderFaultsTest}: a child JVM that
 * inserts rows into a reference table with {@link ShardmapData#writeReference}, one write at a time, and
 * stops at an exact step of its n-th write's two-phase commit, where the test kills it with SIGKILL. In this
 * package so it can open the SDK with the coordinator's step seam.
 *
 * <p>Arguments: targets user password keyspace table idBase writes stopAt, where stopAt is
 * {@code POINT:n} (POINT one of BEFORE_PREPARES, BETWEEN_PREPARES, DECIDED, BETWEEN_COMMITS) or
 * {@code none}. Write n (from 1) inserts the row {@code (idBase + n, n, 'child')}.
 *
 * <p>stdout: {@code READY}; {@code ACK id} after each write acknowledged (writeReference returned);
 * {@code FAIL id reason} after one thrown; {@code AT point id gid} at the stop, after which it waits for a
 * line {@code GO} on stdin (and halts when stdin ends); {@code DONE}.
 */
public final class ReferenceWriterProcess {
  private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

  /** Where the n-th write stops. */
  enum Point { BEFORE_PREPARES, BETWEEN_PREPARES, DECIDED, BETWEEN_COMMITS }

  private ReferenceWriterProcess() {}

  public static void main(String[] args) throws Exception {
    List<String> targets = List.of(args[0].split(","));
    String user = args[1];
    String password = args[2];
    String keyspace = args[3];
    String table = args[4];
    long idBase = Long.parseLong(args[5]);
    int writes = Integer.parseInt(args[6]);
    Point point = null;
    int stopAt = -1;
    if (!args[7].equals("none")) {
      String[] pn = args[7].split(":");
      point = Point.valueOf(pn[0]);
      stopAt = Integer.parseInt(pn[1]);
    }
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    AtomicInteger current = new AtomicInteger();
    ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(targets).keyspaces(keyspace)
        .backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(user).password(password).maxPoolSize(4)
        .staleRouteTimeout(Duration.ofSeconds(20)).maxAttempts(20).build(),
        new io.shardmap.client.internal.query.FenceGuard().asPartGuard(),
        new StopAt(point, stopAt, current, idBase, in));
    OUT.println("READY");
    for (int n = 1; n <= writes; n++) {
      current.set(n);
      long id = idBase + n;
      long v = n;
      try {
        data.writeReference(keyspace, table, c -> {
          try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v, who) VALUES (?, ?, 'child')")) {
            ps.setLong(1, id);
            ps.setLong(2, v);
            return ps.executeUpdate();
          }
        });
        OUT.println("ACK " + id);
      } catch (SQLException e) {
        OUT.println("FAIL " + id + " " + e.getSQLState() + " " + oneLine(e.getMessage()));
      } catch (RuntimeException e) {
        OUT.println("FAIL " + id + " " + (e instanceof ShardmapException s ? s.code() : e) + " " + oneLine(e.getMessage()));
      }
    }
    OUT.println("DONE");
    data.close();
    client.close();
  }

  /** The client's count of reference writes run again after a stale-epoch refusal (for the test's report). */
  public static long referenceReruns(ShardmapClient client) {
    return client.counters().referenceReruns();
  }

  private static String oneLine(String s) {
    return String.valueOf(s).replace('\n', ' ');
  }

  /**
   * Stops the chosen write at its point: prints {@code AT}, then waits for {@code GO}. The "between" points
   * let one shard's step finish and stop another's before it is sent (the steps of one phase run in
   * parallel, one per shard), so one copy is prepared (or committed) and another is not.
   */
  private static final class StopAt implements Steps {
    private final Point point;
    private final int n;
    private final AtomicInteger current;
    private final long idBase;
    private final BufferedReader in;
    private final CountDownLatch firstDone = new CountDownLatch(1);
    private int arrivals;

    StopAt(Point point, int n, AtomicInteger current, long idBase, BufferedReader in) {
      this.point = point;
      this.n = n;
      this.current = current;
      this.idBase = idBase;
      this.in = in;
    }

    @Override
    public void at(Step step, TxnId id, String shard) {
      if (point == null || current.get() != n) {
        return;
      }
      switch (point) {
        case BEFORE_PREPARES -> {
          if (step == Step.PREPARES_START) {
            stop(id);
          }
        }
        case DECIDED -> {
          if (step == Step.DECIDED) {
            stop(id);
          }
        }
        case BETWEEN_PREPARES -> between(step, Step.BEFORE_PREPARE, Step.AFTER_PREPARE, id);
        case BETWEEN_COMMITS -> between(step, Step.BEFORE_COMMIT_PREPARED, Step.AFTER_COMMIT_PREPARED, id);
        default -> throw new IllegalStateException(point.toString());
      }
    }

    private void between(Step step, Step before, Step after, TxnId id) {
      boolean second;
      synchronized (this) {
        second = step == before && ++arrivals == 2;
      }
      if (step == after) {
        firstDone.countDown();
      } else if (second) {
        try {
          firstDone.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        stop(id);
      }
    }

    private void stop(TxnId id) {
      OUT.println("AT " + point + " " + (idBase + n) + " " + id);
      synchronized (in) {
        try {
          String line = in.readLine();
          if (line == null || !line.equals("GO")) {
            Runtime.getRuntime().halt(3);
          }
        } catch (IOException e) {
          Runtime.getRuntime().halt(3);
        }
      }
    }
  }
}
