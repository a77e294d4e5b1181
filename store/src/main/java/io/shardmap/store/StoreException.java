package io.shardmap.store;

/** The one failure type of {@link MetaStore}; {@link #kind()} says what a caller can do about it. */
public final class StoreException extends RuntimeException {

  public enum Kind {
    /** No quorum, no reachable member, or a deadline passed: the outcome of a write is unknown. */
    UNAVAILABLE,
    /** The request revision was compacted away. */
    COMPACTED,
    /** A lease that does not exist (expired or revoked). */
    NOT_FOUND,
    /** The store refused the request as too large (too many ops, too many bytes). */
    TOO_LARGE,
    /** The store is closed. */
    CLOSED,
    /** Anything else; a bug or an unexpected store answer. */
    INTERNAL
  }

  private final Kind kind;
  private final long compactRevision;

  public StoreException(Kind kind, String message, Throwable cause) {
    this(kind, message, cause, 0);
  }

  public StoreException(Kind kind, String message, Throwable cause, long compactRevision) {
    super(message, cause);
    this.kind = kind;
    this.compactRevision = compactRevision;
  }

  public Kind kind() {
    return kind;
  }

  /** For {@link Kind#COMPACTED}: the oldest revision still available; 0 otherwise. */
  public long compactRevision() {
    return compactRevision;
  }
}
