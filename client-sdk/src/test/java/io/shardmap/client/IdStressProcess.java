package io.shardmap.client;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.core.ids.IdClock;
import io.shardmap.core.ids.IdLayout;
import java.io.BufferedReader;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * A child process of {@link GlobalIdsStressTest}: opens global id generators through real directory servers,
 * each issuing ids on its own thread at a paced rate and writing every id it was given, in issue order, to
 * its own file; its clock is an injected {@link IdClock} the test can step back.
 *
 * <p>Arguments: targets generator ttlMs outDir name generators clockOffsetMs idsPerSecond maxIdsPerGenerator.
 *
 * <p>stdin: {@code OPEN n} opens n more generators; {@code STEP ms} steps the wall clock back by ms;
 * {@code STOP} stops issuing, closes the generators (releasing their worker ids) and exits.
 *
 * <p>stdout: {@code OPENED index worker clockMs} per generator opened (clockMs: this process's clock then);
 * {@code USING index worker} when a generator writes its first id with another worker id than its
 * previous one; {@code READY} after the initial generators;
 * {@code LOG message} for each log record of the SDK's id generator (claims acquired and given up);
 * {@code GEN index ids unavailable failedPrecondition} per generator at the end, then {@code DONE}.
 *
 * <p>File format ({@code name-gINDEX.ids}): unsigned LEB128 varints, each the difference to the previous id
 * (the first to 0). Ids strictly increase, so a difference is never 0: a 0 is a marker written once at the
 * start of each run of refusals, where the generator may have changed its claim.
 */
public final class IdStressProcess {
  private static final PrintStream OUT = new PrintStream(System.out, true, StandardCharsets.UTF_8);
  static final IdLayout LAYOUT = IdLayout.defaults();

  /** System time shifted by an offset the test steps (backwards: an NTP step, a VM restored). */
  static final class OffsetClock implements IdClock {
    volatile long offsetMillis;

    OffsetClock(long offsetMillis) {
      this.offsetMillis = offsetMillis;
    }

    @Override
    public long wallMillis() {
      return System.currentTimeMillis() + offsetMillis;
    }

    @Override
    public long nanoTime() {
      return System.nanoTime();
    }

    @Override
    public void pause(long nanos) {
      IdClock.SYSTEM.pause(nanos);
    }
  }

  /** Varint writer with its own buffer (no lock per byte). */
  static final class IdFile implements AutoCloseable {
    private final OutputStream out;
    private final byte[] buf = new byte[1 << 16];
    private int n;
    private long prev;
    private boolean marked = true;

    IdFile(Path p) throws IOException {
      out = new FileOutputStream(p.toFile());
    }

    void id(long id) throws IOException {
      write(id - prev);
      prev = id;
      marked = false;
    }

    /** Once per run of refusals. */
    void refused() throws IOException {
      if (!marked) {
        write(0);
        marked = true;
      }
    }

    private void write(long v) throws IOException {
      if (n > buf.length - 10) {
        out.write(buf, 0, n);
        n = 0;
      }
      while ((v & ~0x7FL) != 0) {
        buf[n++] = (byte) ((v & 0x7F) | 0x80);
        v >>>= 7;
      }
      buf[n++] = (byte) v;
    }

    @Override
    public void close() throws IOException {
      out.write(buf, 0, n);
      out.close();
    }
  }

  /** One generator and its issuing thread. */
  static final class Gen {
    final int index;
    final GlobalIds ids;
    final Thread thread;
    long issued;
    long unavailable;
    long failedPrecondition;
    long lastWorker = -1;
    volatile IOException failed;

    Gen(int index, GlobalIds ids, IdFile file, long perSecond, long max) {
      this.index = index;
      this.ids = ids;
      this.thread = new Thread(() -> run(file, perSecond, max), "ids-" + index);
    }

    private void run(IdFile file, long perSecond, long max) {
      long start = System.nanoTime();
      try (file) {
        while (!stopping && issued < max) {
          // Paced in bursts of up to 1,024 ids: ahead of the rate, park until the rate catches up.
          long due = start + issued * 1_000_000_000L / perSecond;
          long now = System.nanoTime();
          if (due - now > 0) {
            LockSupport.parkNanos(Math.min(due - now, TimeUnit.MILLISECONDS.toNanos(20)));
            continue;
          }
          for (int k = 0; k < 1024 && issued < max; k++) {
            long id;
            try {
              id = ids.next();
            } catch (ShardmapException e) {
              if (e.code() == ErrorCode.UNAVAILABLE) {
                unavailable++;
              } else if (e.code() == ErrorCode.FAILED_PRECONDITION) {
                failedPrecondition++;
              } else {
                throw e;
              }
              file.refused();
              LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
              break;
            }
            file.id(id);
            long worker = LAYOUT.workerOf(id);
            if (worker != lastWorker) {
              lastWorker = worker;
              OUT.println("USING " + index + " " + worker);
            }
            issued++;
          }
        }
      } catch (IOException e) {
        failed = e;
      }
    }
  }

  static volatile boolean stopping;

  private IdStressProcess() {}

  public static void main(String[] args) throws Exception {
    List<String> targets = List.of(args[0].split(","));
    String generator = args[1];
    Duration ttl = Duration.ofMillis(Long.parseLong(args[2]));
    Path dir = Path.of(args[3]);
    String name = args[4];
    int initial = Integer.parseInt(args[5]);
    OffsetClock clock = new OffsetClock(Long.parseLong(args[6]));
    long perSecond = Long.parseLong(args[7]);
    long max = Long.parseLong(args[8]);

    Logger sdk = Logger.getLogger("io.shardmap.client.internal.ids.LeasedIds");
    sdk.setUseParentHandlers(false);
    sdk.addHandler(new Handler() {
      @Override
      public void publish(LogRecord r) {
        OUT.println("LOG " + String.valueOf(r.getMessage()).replace('\n', ' '));
      }

      @Override
      public void flush() { }

      @Override
      public void close() { }
    });

    ShardmapClient client = ShardmapClient.start(ClientOptions.builder().targets(targets).clientId(name)
        .keyspaces("users").backoff(Duration.ofMillis(20), Duration.ofMillis(200)).build());
    IdLayout layout = LAYOUT;
    List<Gen> gens = new ArrayList<>();
    for (int i = 0; i < initial; i++) {
      gens.add(open(client, generator, layout, ttl, clock, dir, name, gens.size(), perSecond, max));
    }
    OUT.println("READY");
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      String[] w = line.strip().split(" ");
      if (w[0].equals("OPEN")) {
        for (int i = Integer.parseInt(w[1]); i > 0; i--) {
          gens.add(open(client, generator, layout, ttl, clock, dir, name, gens.size(), perSecond, max));
        }
      } else if (w[0].equals("STEP")) {
        clock.offsetMillis -= Long.parseLong(w[1]);
        OUT.println("STEPPED " + clock.offsetMillis);
      } else if (w[0].equals("STOP")) {
        break;
      }
    }
    stopping = true;
    for (Gen g : gens) {
      g.thread.join();
      g.ids.close();
      if (g.failed != null) {
        throw g.failed;
      }
      OUT.println("GEN " + g.index + " " + g.issued + " " + g.unavailable + " " + g.failedPrecondition);
    }
    client.close();
    OUT.println("DONE cpu_ms=" + ProcessHandle.current().info().totalCpuDuration().map(Duration::toMillis).orElse(-1L));
  }

  private static Gen open(ShardmapClient client, String generator, IdLayout layout, Duration ttl, OffsetClock clock,
                          Path dir, String name, int index, long perSecond, long max) throws IOException {
    GlobalIds ids = client.ids(generator, layout, ttl, clock);
    OUT.println("OPENED " + index + " " + ids.workerId() + " " + clock.wallMillis());
    Gen g = new Gen(index, ids, new IdFile(dir.resolve(name + "-g" + index + ".ids")), perSecond, max);
    g.thread.start();
    return g;
  }
}
