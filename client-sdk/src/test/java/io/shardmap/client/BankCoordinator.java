package io.shardmap.client;

import io.shardmap.client.internal.txn.TxnCoordinator.Step;
import io.shardmap.client.internal.txn.TxnCoordinator.Steps;
import io.shardmap.core.TxnId;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The coordinator process of {@link CrossShardBankFaultTest}: a child JVM that runs transfers across three
 * shards with {@link ShardmapData#acrossShards}, one at a time, and can be stopped at an exact step of one
 * transfer's two-phase commit, where the test kills it (SIGKILL) or does something to the fleet and lets it
 * go on.
 *
 * <p>Arguments: targets user password table transfers seed stopAt, where stopAt is {@code none} or
 * {@code POINT:n[,POINT:n...]} (the n-th transfer, from 1; POINT one of BEFORE_PREPARES, BETWEEN_PREPARES,
 * DECIDED, BETWEEN_COMMITS). Accounts come on stdin's first line: {@code id:shard,...}.
 *
 * <p>stdout: {@code READY}; {@code ACK tid} after each transfer acknowledged (acrossShards returned);
 * {@code FAIL tid sqlstate-or-code} after one thrown; {@code AT point tid gid} at a stop, after which it waits
 * for a line {@code GO} on stdin; {@code DONE}.
 *
 * <p>Each transfer moves 2a out of one account and a into an account on each other shard, and writes a
 * ledger row {@code (tid, account, delta)} beside each balance, so the test sees which transfers applied on
 * which side.
 */
public final class BankCoordinator {
  private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);

  /** A stop point of one transfer, as the test names it. */
  enum Point { BEFORE_PREPARES, BETWEEN_PREPARES, DECIDED, BETWEEN_COMMITS }

  private BankCoordinator() {}

  public static void main(String[] args) throws Exception {
    List<String> targets = List.of(args[0].split(","));
    String user = args[1];
    String password = args[2];
    String table = args[3];
    int transfers = Integer.parseInt(args[4]);
    long seed = Long.parseLong(args[5]);
    Map<Integer, Point> stops = new HashMap<>();
    if (!args[6].equals("none")) {
      for (String s : args[6].split(",")) {
        String[] pn = s.split(":");
        stops.put(Integer.parseInt(pn[1]), Point.valueOf(pn[0]));
      }
    }
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Map<String, List<Long>> byShard = new java.util.TreeMap<>();
    for (String a : in.readLine().split(",")) {
      String[] is = a.split(":");
      byShard.computeIfAbsent(is[1], k -> new ArrayList<>()).add(Long.parseLong(is[0]));
    }
    List<String> shards = new ArrayList<>(byShard.keySet());

    AtomicInteger current = new AtomicInteger();
    StopAt stopAt = new StopAt(stops, current, in);
    ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(targets)
        .keyspaces("accounts").backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    ShardmapData data = ShardmapData.open(client, DataOptions.builder().user(user).password(password).maxPoolSize(4)
        .staleRouteTimeout(Duration.ofSeconds(10)).build(),
        new io.shardmap.client.internal.query.FenceGuard().asPartGuard(), stopAt);
    OUT.println("READY");
    Random rnd = new Random(seed);
    for (int n = 1; n <= transfers; n++) {
      current.set(n);
      String tid = "t" + seed + "-" + n;
      List<String> order = new ArrayList<>(shards);
      java.util.Collections.rotate(order, rnd.nextInt(order.size()));
      long from = pick(byShard.get(order.get(0)), rnd);
      long to1 = pick(byShard.get(order.get(1)), rnd);
      long to2 = pick(byShard.get(order.get(2)), rnd);
      long a = 1 + rnd.nextInt(20);
      try {
        data.acrossShards(tx -> {
          move(tx.connection("accounts", from), table, tid, from, -2 * a);
          move(tx.connection("accounts", to1), table, tid, to1, a);
          move(tx.connection("accounts", to2), table, tid, to2, a);
          return null;
        });
        OUT.println("ACK " + tid);
      } catch (SQLException e) {
        OUT.println("FAIL " + tid + " " + e.getSQLState() + " " + oneLine(e.getMessage()));
      } catch (RuntimeException e) {
        OUT.println("FAIL " + tid + " " + (e instanceof io.shardmap.core.ShardmapException s ? s.code() : e)
            + " " + oneLine(e.getMessage()));
      }
    }
    OUT.println("DONE");
    data.close();
    client.close();
  }

  private static String oneLine(String s) {
    return String.valueOf(s).replace('\n', ' ');
  }

  private static long pick(List<Long> ids, Random rnd) {
    return ids.get(rnd.nextInt(ids.size()));
  }

  private static void move(Connection c, String table, String tid, long id, long delta) throws SQLException {
    try (PreparedStatement ps = c.prepareStatement("UPDATE " + table + " SET balance = balance + ? WHERE id = ?")) {
      ps.setLong(1, delta);
      ps.setLong(2, id);
      if (ps.executeUpdate() != 1) {
        throw new SQLException("account " + id + " is missing");
      }
    }
    try (PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + "_ledger (tid, id, delta) VALUES (?, ?, ?)")) {
      ps.setString(1, tid);
      ps.setLong(2, id);
      ps.setLong(3, delta);
      ps.executeUpdate();
    }
  }

  /**
   * Stops the coordinator at a point of the chosen transfers: prints {@code AT}, then waits for {@code GO}.
   * "Between" points let the first shard's step finish and stop the second's before it is sent (the steps
   * of one phase run in parallel, one per shard).
   */
  private static final class StopAt implements Steps {
    private final Map<Integer, Point> stops;
    private final AtomicInteger current;
    private final BufferedReader in;
    private int arrivals;
    private CountDownLatch firstDone = new CountDownLatch(1);
    private int latchFor = -1;

    StopAt(Map<Integer, Point> stops, AtomicInteger current, BufferedReader in) {
      this.stops = stops;
      this.current = current;
      this.in = in;
    }

    @Override
    public void at(Step step, TxnId id, String shard) {
      int n = current.get();
      Point p = stops.get(n);
      if (p == null) {
        return;
      }
      String tid = "t?-" + n;
      switch (p) {
        case BEFORE_PREPARES -> {
          if (step == Step.PREPARES_START) {
            stop(p, n, id);
          }
        }
        case DECIDED -> {
          if (step == Step.DECIDED) {
            stop(p, n, id);
          }
        }
        case BETWEEN_PREPARES -> between(step, Step.BEFORE_PREPARE, Step.AFTER_PREPARE, p, n, id);
        case BETWEEN_COMMITS -> between(step, Step.BEFORE_COMMIT_PREPARED, Step.AFTER_COMMIT_PREPARED, p, n, id);
        default -> throw new IllegalStateException(tid);
      }
    }

    private void between(Step step, Step before, Step after, Point p, int n, TxnId id) {
      boolean second;
      CountDownLatch done;
      synchronized (this) {
        if (latchFor != n) {
          latchFor = n;
          arrivals = 0;
          firstDone = new CountDownLatch(1);
        }
        done = firstDone;
        second = step == before && ++arrivals == 2;
      }
      if (step == after) {
        done.countDown();
      } else if (second) {
        try {
          done.await();
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
        }
        stop(p, n, id);
      }
    }

    private void stop(Point p, int n, TxnId id) {
      OUT.println("AT " + p + " " + n + " " + id);
      synchronized (in) {
        try {
          String line = in.readLine();
          if (line == null || !line.equals("GO")) {
            Runtime.getRuntime().halt(3);
          }
        } catch (java.io.IOException e) {
          Runtime.getRuntime().halt(3);
        }
      }
    }
  }

  static String usage() {
    return Arrays.toString(Point.values());
  }
}
