package io.shardmap.bench;

import java.util.ArrayDeque;
import java.util.Deque;

/** Closes what was registered, last first, and keeps going when one close fails. */
final class Closer implements AutoCloseable {
  private final Deque<AutoCloseable> stack = new ArrayDeque<>();

  <T extends AutoCloseable> T add(T c) {
    stack.push(c);
    return c;
  }

  @Override
  public void close() {
    RuntimeException first = null;
    while (!stack.isEmpty()) {
      try {
        stack.pop().close();
      } catch (Exception e) {
        if (first == null) {
          first = new IllegalStateException("closing a benchmark resource failed", e);
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
