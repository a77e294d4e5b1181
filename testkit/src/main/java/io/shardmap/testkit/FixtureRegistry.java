package io.shardmap.testkit;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * The JVM-wide side of one fixture class (each has one registry, in a static field): its shared
 * instance, and a shutdown hook that closes every instance still open when the JVM exits. The
 * shared instance belongs to the JVM and tests must not close it, and a test may forget to close
 * its own instance; the hook makes sure no server outlives the test run either way.
 *
 * <p>The registry also holds the words the fixture's messages use, so that the checks in
 * {@link FixtureLifecycle} read as the fixture's own ("member 3 of 3", "cluster is closed").
 */
final class FixtureRegistry<F> {

  /** Prefix of this fixture's lines on stderr, e.g. {@code EtcdCluster}. */
  final String logTag;
  /** E.g. "the shared etcd cluster". */
  final String sharedName;
  /** What one instance is called in "... is closed", e.g. "cluster". */
  final String noun;
  /** What one server is called in index messages, e.g. "member". */
  final String unit;
  /** Message when stop/start is asked of servers that cannot be controlled (external ones). */
  final String notControllable;

  private final Set<FixtureLifecycle> open = ConcurrentHashMap.newKeySet();
  private final Object sharedLock = new Object();
  private F shared;
  private RuntimeException sharedFailure;

  FixtureRegistry(String hookThreadName, String logTag, String sharedName, String noun, String unit,
      String notControllable) {
    this.logTag = logTag;
    this.sharedName = sharedName;
    this.noun = noun;
    this.unit = unit;
    this.notControllable = notControllable;
    Runtime.getRuntime().addShutdownHook(new Thread(this::closeAllAtExit, hookThreadName));
  }

  /**
   * The shared instance, made by {@code create} on the first call. If that fails, every later call
   * fails with the same cause instead of trying again.
   */
  F shared(Supplier<F> create) {
    return shared(create, instance -> { }, instance -> true);
  }

  /**
   * The shared instance, made by {@code create} on the first call and handed to {@code prepare}
   * (which may, say, grow it) on every call before it is returned. If creating fails, or preparing
   * fails and {@code broken} says the instance cannot be relied on any more, every later call fails
   * at once with the original cause instead of trying again and piling up servers. A failure that
   * leaves the instance usable (a request it cannot meet) fails only its own call.
   */
  F shared(Supplier<F> create, Consumer<F> prepare, Predicate<F> broken) {
    synchronized (sharedLock) {
      if (sharedFailure != null) {
        throw new IllegalStateException(sharedName + " failed to start earlier", sharedFailure);
      }
      try {
        if (shared == null) {
          shared = create.get();
        }
        prepare.accept(shared);
        return shared;
      } catch (RuntimeException e) {
        if (shared == null || broken.test(shared)) {
          sharedFailure = e;
        }
        throw e;
      }
    }
  }

  /** From now on the shutdown hook closes {@code fixture} if it is still open at exit. */
  void opened(FixtureLifecycle fixture) {
    open.add(fixture);
  }

  void closed(FixtureLifecycle fixture) {
    open.remove(fixture);
  }

  private void closeAllAtExit() {
    for (FixtureLifecycle fixture : List.copyOf(open)) {
      try {
        fixture.shutDown();
      } catch (RuntimeException e) {
        System.err.println("[" + logTag + "] cleanup at exit failed: " + e);
      }
    }
  }
}
