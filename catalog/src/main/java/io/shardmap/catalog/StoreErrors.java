package io.shardmap.catalog;

import io.shardmap.core.ErrorCode;
import io.shardmap.core.ShardmapException;
import io.shardmap.store.StoreException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeoutException;

/**
 * The one translation of store failures (and waits on them) into {@link ShardmapException}s whose
 * messages say what an operator needs: what was being done, and for a write whether it may have been
 * applied. UNAVAILABLE means "etcd could not be asked"; nothing else carries that code.
 */
public final class StoreErrors {
  private StoreErrors() {}

  /**
   * A store failure as a ShardmapException with an operator-readable message that claims nothing about
   * writes: for reads outside a map change (loading the maps, presence records).
   */
  public static ShardmapException fromStore(String what, Throwable t) {
    return translate(what, t, Access.NEUTRAL);
  }

  /**
   * A failed read made while planning a change, before anything was sent to etcd: the message says what
   * could not be read and that nothing was written. {@code what} names the data, e.g. "the moving markers
   * of keyspace 'users'".
   */
  public static ShardmapException fromStoreRead(String what, Throwable t) {
    return translate(what, t, Access.PLANNING_READ);
  }

  /**
   * A failed etcd transaction: when etcd did not answer, the message says the write may or may not have
   * been applied (the request may have reached etcd). {@code op} names the change, e.g. "SplitRange".
   */
  public static ShardmapException fromStoreWrite(String op, Throwable t) {
    return translate(op, t, Access.WRITE);
  }

  /** The failure behind future wrappers ({@link ExecutionException}, {@link CompletionException}). */
  public static Throwable unwrap(Throwable t) {
    Throwable e = t;
    while ((e instanceof ExecutionException || e instanceof CompletionException) && e.getCause() != null) {
      e = e.getCause();
    }
    return e;
  }

  /** The store's kind of the failure behind future wrappers, or null when it is not a store failure. */
  public static io.shardmap.store.StoreException.Kind kind(Throwable t) {
    return unwrap(t) instanceof io.shardmap.store.StoreException s ? s.kind() : null;
  }

  private enum Access { NEUTRAL, PLANNING_READ, WRITE }

  private static ShardmapException translate(String what, Throwable t, Access access) {
    Throwable e = unwrap(t);
    if (e instanceof ShardmapException se) {
      return se;
    }
    if (e instanceof InterruptedException) {
      Thread.currentThread().interrupt();
      return new ShardmapException(ErrorCode.UNAVAILABLE, what + ": interrupted", e);
    }
    String unavailable = null;
    if (e instanceof TimeoutException) {
      unavailable = "etcd did not answer in time: no quorum or unreachable";
    } else if (e instanceof StoreException s
        && (s.kind() == StoreException.Kind.UNAVAILABLE || s.kind() == StoreException.Kind.CLOSED)) {
      unavailable = s.getMessage();
    }
    if (unavailable != null) {
      return new ShardmapException(ErrorCode.UNAVAILABLE, switch (access) {
        case NEUTRAL -> what + ": etcd unavailable (" + unavailable + ")";
        case PLANNING_READ -> "could not read " + what + " from etcd (" + unavailable + "); nothing was written";
        case WRITE -> what + ": etcd did not confirm the write (" + unavailable + "); it may or may not have "
            + "been applied";
      }, e);
    }
    String subject = access == Access.PLANNING_READ ? "reading " + what : what;
    if (e instanceof StoreException s) {
      return switch (s.kind()) {
        case TOO_LARGE -> new ShardmapException(ErrorCode.INVALID_ARGUMENT, subject
            + ": the change is too large for one etcd transaction (" + s.getMessage()
            + "); make it in smaller steps", s);
        case NOT_FOUND -> new ShardmapException(ErrorCode.NOT_FOUND, subject + ": " + s.getMessage(), s);
        default -> new ShardmapException(ErrorCode.INTERNAL, subject + ": " + s.getMessage(), s);
      };
    }
    return new ShardmapException(ErrorCode.INTERNAL, subject + ": " + e, e);
  }
}
