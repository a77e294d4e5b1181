package io.shardmap.testkit;

/**
 * The state every fixture instance keeps about itself, and the checks and close logic built on
 * it: whether it is the JVM's shared instance (which tests must not close), whether something
 * failed (then {@link #shutDown} keeps the logs and says where they are), and whether it is closed.
 *
 * <p>{@link #shutDown} locks the fixture object itself, the same monitor as the fixture's
 * synchronized stop/start methods, so closing never runs in the middle of a stop or start.
 */
final class FixtureLifecycle {

  private final FixtureRegistry<?> registry;
  private final Object monitor;
  private final ServerBackend backend;
  private final boolean isShared;
  private volatile boolean failed;
  private volatile boolean closed;

  /**
   * Registers the new instance, so the shutdown hook closes it if nobody else does. Create it last
   * in the fixture's constructor: from here on the hook may use it.
   */
  FixtureLifecycle(FixtureRegistry<?> registry, Object fixture, ServerBackend backend, boolean isShared) {
    this.registry = registry;
    this.monitor = fixture;
    this.backend = backend;
    this.isShared = isShared;
    registry.opened(this);
  }

  boolean failed() {
    return failed;
  }

  /** Something went wrong: keep the logs on close, and point to them. */
  void markFailed() {
    failed = true;
  }

  /**
   * The fixture's {@code close()}: {@link #shutDown}, unless this is the shared instance.
   *
   * @throws IllegalStateException on the shared instance, which belongs to the JVM
   */
  void close() {
    if (isShared) {
      throw new IllegalStateException(registry.sharedName + " is closed by a JVM shutdown hook, not by tests");
    }
    shutDown();
  }

  /** Closes the backend (keeping logs if anything failed) and unregisters. Idempotent. */
  void shutDown() {
    synchronized (monitor) {
      if (closed) {
        return;
      }
      closed = true;
      registry.closed(this);
      backend.close(failed);
      if (failed && backend.keepsLogs()) {
        System.err.println("[" + registry.logTag + "] a failure occurred; logs kept: " + describeLogs());
      }
    }
  }

  /**
   * The checks before stopping or starting server {@code i}, in this order.
   *
   * @throws UnsupportedOperationException if the servers cannot be stopped and started
   * @throws IllegalStateException if closed
   * @throws IndexOutOfBoundsException if there is no server {@code i}
   */
  void requireControl(int i) {
    if (!backend.canControl()) {
      throw new UnsupportedOperationException(registry.notControllable);
    }
    requireOpen();
    checkIndex(i);
  }

  void requireOpen() {
    if (closed) {
      throw new IllegalStateException(registry.noun + " is closed");
    }
  }

  void checkIndex(int i) {
    int size = backend.size();
    if (i < 0 || i >= size) {
      throw new IndexOutOfBoundsException(registry.unit + " " + i + " of " + size);
    }
  }

  /** Where each server's output goes, for humans reading a failure. */
  String describeLogs() {
    StringBuilder out = new StringBuilder(backend.description());
    for (int i = 0; i < backend.size(); i++) {
      out.append("\n  ").append(registry.unit).append(' ').append(i).append(": ").append(backend.logLocation(i));
    }
    return out.toString();
  }
}
