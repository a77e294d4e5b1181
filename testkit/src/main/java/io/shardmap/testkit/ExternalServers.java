package io.shardmap.testkit;

/**
 * Servers named by an environment variable. They belong to whoever runs them: the fixture can
 * neither stop nor start them, cannot see whether they run or what they log, and has nothing to
 * release when it closes.
 */
abstract class ExternalServers implements ServerBackend {

  /** E.g. "external cluster", the message of the exception that stop and start throw. */
  private final String what;

  ExternalServers(String what) {
    this.what = what;
  }

  @Override
  public final boolean canControl() {
    return false;
  }

  @Override
  public final void stop(int i) {
    throw new UnsupportedOperationException(what);
  }

  @Override
  public final void start(int i) {
    throw new UnsupportedOperationException(what);
  }

  @Override
  public final boolean isRunning(int i) {
    return true;
  }

  @Override
  public final String logLocation(int i) {
    return "(external; no logs)";
  }

  @Override
  public final boolean keepsLogs() {
    return false;
  }

  @Override
  public final void close(boolean keepLogs) {
    // The servers belong to whoever named them in the environment; nothing here to release.
  }
}
