package io.shardmap.bench;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.shardmap.proto.v1.ListShardsRequest;
import io.shardmap.proto.v1.ShardMapServiceGrpc;
import io.shardmap.testkit.FreePorts;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A directory server ({@code io.shardmap.server.Main} on etcd with default settings, or
 * {@link MemoryDirectoryMain}) in a child JVM on 127.0.0.1, so
 * that it can be killed like a crashed replica (SIGKILL: the kernel closes its sockets) or frozen like a
 * hung or partitioned one (SIGSTOP: its sockets stay open and silent), and so that its heap is not the
 * measuring JVM's. The child runs from this JVM's class path (the bench jar holds the server).
 */
public final class ServerProcess implements AutoCloseable {
  private static final long READY_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(60);
  private static final int START_ATTEMPTS = 3;

  private final String name;
  private final Process process;
  private final int port;
  private final Path log;

  private ServerProcess(String name, Process process, int port, Path log) {
    this.name = name;
    this.process = process;
    this.port = port;
    this.log = log;
  }

  /**
   * Starts a server on a fresh port and returns once it answers ListShards at or past
   * {@code minRevision} (it has loaded the maps); retries with another port if the first was taken.
   */
  public static ServerProcess start(String name, List<String> etcdEndpoints, String etcdPrefix, Path logDir,
                                    long minRevision, String... extraArgs) throws IOException, InterruptedException {
    return start(name, logDir, minRevision, "-Xmx512m", port -> {
      List<String> args = new java.util.ArrayList<>(List.of("io.shardmap.server.Main",
          "--listen", "127.0.0.1:" + port,
          "--metrics-listen", "off",
          "--etcd-endpoints", String.join(",", etcdEndpoints),
          "--etcd-prefix", etcdPrefix));
      args.addAll(List.of(extraArgs));
      return args;
    });
  }

  /**
   * A {@link MemoryDirectoryMain} server holding the given range keyspaces (name to range count), each
   * written as records to its in-memory store before the server starts.
   */
  public static ServerProcess startInMemory(String name, Path logDir, int shards,
                                            java.util.Map<String, Integer> keyspaces)
      throws IOException, InterruptedException {
    return start(name, logDir, 1, "-Xmx2g", port -> {
      List<String> args = new ArrayList<>(List.of(MemoryDirectoryMain.class.getName(), Integer.toString(port),
          Integer.toString(shards)));
      keyspaces.forEach((k, n) -> args.add(k + "=" + n));
      return args;
    });
  }

  private static ServerProcess start(String name, Path logDir, long minRevision, String maxHeap,
                                     java.util.function.IntFunction<List<String>> mainAndArgs)
      throws IOException, InterruptedException {
    IllegalStateException last = null;
    for (int attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
      int port = FreePorts.allocate(1)[0];
      Path log = logDir.resolve(name + "-" + port + ".log");
      List<String> cmd = new ArrayList<>(List.of(
          Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
          "-Xms128m", maxHeap,
          "-cp", System.getProperty("java.class.path")));
      cmd.addAll(mainAndArgs.apply(port));
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
          .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
      Process p = pb.start();
      p.getOutputStream().close();
      ServerProcess s = new ServerProcess(name, p, port, log);
      try {
        s.awaitReady(minRevision);
        return s;
      } catch (IllegalStateException e) {
        s.close();
        last = e;
      }
    }
    throw last;
  }

  private void awaitReady(long minRevision) throws InterruptedException {
    long deadline = System.nanoTime() + READY_TIMEOUT_NANOS;
    ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    try {
      var stub = ShardMapServiceGrpc.newBlockingStub(ch);
      String lastError = "no answer";
      while (System.nanoTime() < deadline) {
        if (!process.isAlive()) {
          throw new IllegalStateException(name + " exited with " + process.exitValue() + "; " + tail());
        }
        try {
          long rev = stub.withDeadlineAfter(2, TimeUnit.SECONDS).listShards(ListShardsRequest.getDefaultInstance())
              .getRevision();
          if (rev >= minRevision) {
            return;
          }
          lastError = "at revision " + rev + ", waiting for " + minRevision;
        } catch (StatusRuntimeException e) {
          lastError = e.getStatus().toString();
        }
        Thread.sleep(50);
      }
      throw new IllegalStateException(name + " on port " + port + " not ready within 60 s (" + lastError + "); "
          + tail());
    } finally {
      ch.shutdownNow();
      ch.awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  public String name() {
    return name;
  }

  public int port() {
    return port;
  }

  public String target() {
    return "127.0.0.1:" + port;
  }

  public long pid() {
    return process.pid();
  }

  /** SIGKILL, then waits (bounded) until the process is gone. */
  public void kill() throws InterruptedException {
    process.destroyForcibly();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      throw new IllegalStateException(name + " (pid " + pid() + ") still alive 10 s after SIGKILL");
    }
  }

  /** SIGSTOP: the process stops running but keeps its sockets open (a hung or partitioned replica). */
  public void freeze() throws IOException, InterruptedException {
    Process k = new ProcessBuilder("kill", "-STOP", Long.toString(pid())).redirectErrorStream(true).start();
    if (!k.waitFor(10, TimeUnit.SECONDS) || k.exitValue() != 0) {
      k.destroyForcibly();
      throw new IllegalStateException("kill -STOP " + pid() + " failed");
    }
  }

  public boolean isAlive() {
    return process.isAlive();
  }

  /** The last lines of the server's output, for failure messages. */
  public String tail() {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      return "last lines of " + log + ":\n  "
          + String.join("\n  ", lines.subList(Math.max(0, lines.size() - 15), lines.size()));
    } catch (IOException e) {
      return "log " + log + " unreadable: " + e;
    }
  }

  /** Kills the process if it still runs (a frozen one too: SIGKILL needs no SIGCONT). */
  @Override
  public void close() {
    if (process.isAlive()) {
      process.destroyForcibly();
      try {
        process.waitFor(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
