package io.shardmap.query.internal.merge;

import java.util.List;

/** Closes every source even when some close throws; the first failure is rethrown, the others suppressed. */
final class Closer {
  private Closer() {}

  static void closeAll(List<? extends AutoCloseable> sources, Throwable primary) {
    RuntimeException first = null;
    for (AutoCloseable s : sources) {
      try {
        s.close();
      } catch (Exception | Error e) {
        if (primary != null) {
          primary.addSuppressed(e);
        } else if (first == null) {
          first = e instanceof RuntimeException ? (RuntimeException) e
              : new IllegalStateException("closing a shard's rows failed", e);
        } else {
          first.addSuppressed(e);
        }
      }
    }
    if (first != null) {
      throw first;
    }
  }
}
