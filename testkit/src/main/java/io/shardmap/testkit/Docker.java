package io.shardmap.testkit;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import org.testcontainers.DockerClientFactory;
import org.testcontainers.containers.GenericContainer;

/**
 * What the fixtures' container backends share about Docker: whether there is an engine, which
 * image to run, where published ports are reached, and the container operations that keep a
 * container for a restart (which {@link GenericContainer#stop()} does not: it removes it).
 */
final class Docker {

  private Docker() {}

  /** Whether Testcontainers finds a Docker engine; false also when Testcontainers cannot load. */
  static boolean available() {
    try {
      return DockerClientFactory.instance().isDockerAvailable();
    } catch (RuntimeException | LinkageError e) {
      return false;
    }
  }

  /** The image named by the environment variable {@code env}, else {@code defaultImage}. */
  static String image(String env, String defaultImage) {
    String configured = System.getenv(env);
    return configured == null || configured.isBlank() ? defaultImage : configured.strip();
  }

  /**
   * Where the containers' published ports are reached from this JVM ({@code address}), and whether
   * the engine runs on this machine ({@code local}).
   */
  record Host(String address, boolean local) {

    static Host current() {
      String dockerHost = DockerClientFactory.instance().dockerHostIpAddress();
      // Ports are published on loopback only when Docker runs on this machine (a remote
      // engine's loopback is unreachable from here); name it by address so that clients do not
      // try ::1, where nothing is published.
      boolean local = isLoopback(dockerHost);
      return new Host(local ? "127.0.0.1" : dockerHost, local);
    }

    /** A port binding for {@link GenericContainer#setPortBindings}: {@code hostPort} to {@code containerPort}. */
    String binding(int hostPort, int containerPort) {
      return (local ? "127.0.0.1:" : "") + hostPort + ":" + containerPort;
    }

    private static boolean isLoopback(String host) {
      try {
        return InetAddress.getByName(host).isLoopbackAddress();
      } catch (UnknownHostException e) {
        return false;
      }
    }
  }

  /**
   * {@code docker kill} (SIGKILL) and returns once the container has stopped. Unlike
   * {@link GenericContainer#stop()} this keeps the container and its data for {@link #restart}.
   *
   * @param what names the server in failure messages, e.g. "shard 1"
   * @param server names the software in the interrupt message, e.g. "PostgreSQL"
   * @throws IllegalStateException if it is still running {@code timeout} later
   */
  static void kill(GenericContainer<?> container, String what, String server, Duration timeout, Duration pollInterval) {
    container.getDockerClient().killContainerCmd(container.getContainerId()).exec();
    Instant deadline = Instant.now().plus(timeout);
    while (container.isRunning()) {
      if (!Instant.now().isBefore(deadline)) {
        throw new IllegalStateException("container of " + what + " still running after docker kill");
      }
      FixtureSupport.sleep(pollInterval, server);
    }
  }

  /**
   * {@code docker start} of a container stopped by {@link #kill}: same data, same published ports.
   * Does not wait for the server inside to serve.
   */
  static void restart(GenericContainer<?> container) {
    container.getDockerClient().startContainerCmd(container.getContainerId()).exec();
  }

  /** The last {@code lines} lines of the container's output, or why they are unavailable; never throws. */
  static String logTail(GenericContainer<?> container, int lines) {
    try {
      String[] all = container.getLogs().split("\n");
      return String.join("\n", Arrays.asList(all).subList(Math.max(0, all.length - lines), all.length));
    } catch (RuntimeException e) {
      return "(logs unavailable: " + e + ")";
    }
  }

  /**
   * Removes every container and its data. A container that cannot be removed is reported on
   * stderr and does not stop the removal of the others.
   */
  static void removeAll(List<GenericContainer<?>> containers, String logTag) {
    for (GenericContainer<?> container : containers) {
      try {
        container.stop(); // removes the container and its data
      } catch (RuntimeException e) {
        System.err.println("[" + logTag + "] could not remove container: " + e);
      }
    }
  }
}
