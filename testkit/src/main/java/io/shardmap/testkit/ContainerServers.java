package io.shardmap.testkit;

import java.util.ArrayList;
import java.util.List;
import org.testcontainers.containers.GenericContainer;

/**
 * Servers as Docker containers, server i in {@code containers.get(i)}. A stopped server's
 * container is killed but kept ({@link Docker#kill}), so starting it again brings the server back
 * with its data and its published ports. Subclasses create and start the containers, and stop
 * them with their own timing and wording.
 */
abstract class ContainerServers implements ServerBackend {

  final String image;
  final Docker.Host host;
  /** In server order; a container is added before it is started, so close removes it even if starting failed. */
  final List<GenericContainer<?>> containers = new ArrayList<>();
  /** What one server is called in messages, e.g. "member". */
  private final String unit;
  /** Prefix of lines on stderr, e.g. "EtcdCluster". */
  private final String logTag;

  /** Reads the image name from {@code imageEnv} and asks Docker where published ports are reached. */
  ContainerServers(String imageEnv, String defaultImage, String unit, String logTag) {
    this.image = Docker.image(imageEnv, defaultImage);
    this.host = Docker.Host.current();
    this.unit = unit;
    this.logTag = logTag;
  }

  @Override
  public String description() {
    return "Testcontainers " + image;
  }

  @Override
  public final boolean canControl() {
    return true;
  }

  @Override
  public final void start(int i) {
    Docker.restart(containers.get(i));
  }

  @Override
  public final boolean isRunning(int i) {
    return i < containers.size() && containers.get(i).isRunning();
  }

  @Override
  public final String logLocation(int i) {
    return i < containers.size() && containers.get(i).getContainerId() != null
        ? "docker logs " + containers.get(i).getContainerId() : "(container not created)";
  }

  @Override
  public final String diagnostics(int i) {
    if (i >= containers.size() || containers.get(i).getContainerId() == null) {
      return "--- " + unit + " " + i + ": container not created";
    }
    return "--- " + unit + " " + i + " (" + logLocation(i) + "), last lines:\n"
        + Docker.logTail(containers.get(i), FixtureSupport.LOG_TAIL_LINES);
  }

  /** Containers are removed with their data and output, so there are never logs to keep. */
  @Override
  public final boolean keepsLogs() {
    return false;
  }

  @Override
  public void close(boolean keepLogs) {
    Docker.removeAll(containers, logTag);
  }
}
