package io.shardmap.testkit;

import java.io.BufferedReader;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Hands out TCP ports on 127.0.0.1 that were free when allocated.
 *
 * <p>Fixtures need ports that stay usable across a member's stop and restart, so two choices
 * differ from the usual "bind port 0" trick:
 *
 * <ul>
 *   <li>Ports are picked below the kernel's ephemeral range. The kernel never hands those out as
 *       the local end of an outgoing connection, so a stopped member's port is not taken by some
 *       random client socket while the member is down.
 *   <li>A port is handed out at most once per JVM, so one fixture never receives a port that
 *       another fixture in the same JVM owns (even while that owner is stopped).
 * </ul>
 *
 * <p>All ports of one {@link #allocate} call are probed while every probe socket is still open,
 * so one call never returns the same port twice. Nothing can stop another process from binding a
 * port between allocation and use; callers that start servers retry with fresh ports when a
 * server fails to bind.
 */
public final class FreePorts {

  /** Lowest port considered; keeps clear of well-known and commonly configured service ports. */
  private static final int LOWEST = 10_000;
  /** Used when the ephemeral range cannot be read (the Linux default lower bound). */
  private static final int DEFAULT_EPHEMERAL_LOW = 32_768;
  private static final int MAX_PROBES_PER_PORT = 200;

  private static final Set<Integer> HANDED_OUT = new HashSet<>();

  private FreePorts() {}

  /**
   * Returns {@code count} distinct ports that were bindable on 127.0.0.1 at the time of the call
   * and that no earlier call in this JVM returned.
   *
   * @throws IllegalStateException if not enough free ports can be found
   */
  public static synchronized int[] allocate(int count) {
    if (count < 1) {
      throw new IllegalArgumentException("count must be positive: " + count);
    }
    int high = candidateRangeEnd();
    ThreadLocalRandom random = ThreadLocalRandom.current();
    InetAddress loopback = InetAddress.getLoopbackAddress();
    List<ServerSocket> held = new ArrayList<>();
    int[] ports = new int[count];
    try {
      for (int n = 0; n < count; n++) {
        ports[n] = probeOne(loopback, random, high, held);
      }
    } finally {
      for (ServerSocket socket : held) {
        try {
          socket.close();
        } catch (IOException ignored) {
          // The probe socket never accepted anything; failing to close it changes nothing.
        }
      }
    }
    for (int port : ports) {
      HANDED_OUT.add(port);
    }
    return ports;
  }

  /** Convenience for a single port; same guarantees as {@link #allocate(int)}. */
  public static int allocate() {
    return allocate(1)[0];
  }

  private static int probeOne(InetAddress loopback, ThreadLocalRandom random, int high, List<ServerSocket> held) {
    for (int attempt = 0; attempt < MAX_PROBES_PER_PORT; attempt++) {
      int candidate = random.nextInt(LOWEST, high);
      if (HANDED_OUT.contains(candidate) || isHeld(held, candidate)) {
        continue;
      }
      ServerSocket socket = null;
      try {
        socket = new ServerSocket();
        // Same option etcd and PostgreSQL set on their listeners, so the probe answers the
        // question those servers will ask ("can I bind?") and not a stricter one.
        socket.setReuseAddress(true);
        socket.bind(new InetSocketAddress(loopback, candidate), 1);
        held.add(socket);
        return candidate;
      } catch (IOException inUse) {
        if (socket != null) {
          try {
            socket.close();
          } catch (IOException ignored) {
            // Never bound; nothing to release.
          }
        }
      }
    }
    throw new IllegalStateException("no free loopback port found in [" + LOWEST + ", " + high + ") after "
        + MAX_PROBES_PER_PORT + " attempts");
  }

  private static boolean isHeld(List<ServerSocket> held, int port) {
    for (ServerSocket socket : held) {
      if (socket.getLocalPort() == port) {
        return true;
      }
    }
    return false;
  }

  /** End (exclusive) of the range ports are drawn from: the start of the ephemeral range. */
  private static int candidateRangeEnd() {
    int ephemeralLow = DEFAULT_EPHEMERAL_LOW;
    Path range = Path.of("/proc/sys/net/ipv4/ip_local_port_range");
    if (Files.isReadable(range)) {
      // Read line-wise: some kernels report a bogus size for /proc files, and the
      // whole-file readers (readString, readAllBytes) trust it and return a truncated value.
      try (BufferedReader reader = Files.newBufferedReader(range)) {
        String line = reader.readLine();
        int parsed = Integer.parseInt(line.trim().split("\\s+")[0]);
        ephemeralLow = parsed > 1024 && parsed <= 65_535 ? parsed : DEFAULT_EPHEMERAL_LOW;
      } catch (IOException | RuntimeException unreadable) {
        ephemeralLow = DEFAULT_EPHEMERAL_LOW;
      }
    }
    // A machine tuned to a very wide ephemeral range leaves no room below it; fall back to the
    // whole unprivileged range and rely on the probe plus the callers' retry.
    return ephemeralLow - LOWEST >= 2_000 ? ephemeralLow : 65_536;
  }
}
