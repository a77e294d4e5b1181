package io.shardmap.store;

import java.util.Objects;

/**
 * One guard of a transaction. A missing key has version 0, create and mod revision 0, so
 * {@code version(k, EQUAL, 0)} asserts absence and {@code modRevision(k, EQUAL, r)} asserts that nobody
 * wrote {@code k} since the read at which it had mod revision {@code r}.
 */
public record Compare(String key, Target target, Op op, long number) {

  public enum Target { VERSION, CREATE_REVISION, MOD_REVISION }

  public enum Op { EQUAL, NOT_EQUAL, GREATER, LESS }

  public Compare {
    Objects.requireNonNull(key, "key");
    Objects.requireNonNull(target, "target");
    Objects.requireNonNull(op, "op");
  }

  public static Compare modRevision(String key, long revision) {
    return new Compare(key, Target.MOD_REVISION, Op.EQUAL, revision);
  }

  public static Compare absent(String key) {
    return new Compare(key, Target.VERSION, Op.EQUAL, 0);
  }

  public static Compare present(String key) {
    return new Compare(key, Target.VERSION, Op.GREATER, 0);
  }

  /** Evaluates this compare against the key's current counters (all zero when absent). */
  public boolean test(long version, long createRevision, long modRevision) {
    long actual = switch (target) {
      case VERSION -> version;
      case CREATE_REVISION -> createRevision;
      case MOD_REVISION -> modRevision;
    };
    return switch (op) {
      case EQUAL -> actual == number;
      case NOT_EQUAL -> actual != number;
      case GREATER -> actual > number;
      case LESS -> actual < number;
    };
  }
}
