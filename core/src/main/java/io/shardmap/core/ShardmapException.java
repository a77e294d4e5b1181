package io.shardmap.core;

/** The one exception type of Shardmap. The message is meant for a person: it names the field and rule. */
public final class ShardmapException extends RuntimeException {

  private final ErrorCode code;

  public ShardmapException(ErrorCode code, String message) {
    super(message);
    this.code = code;
  }

  public ShardmapException(ErrorCode code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }

  public static ShardmapException invalid(String field, String rule) {
    return new ShardmapException(ErrorCode.INVALID_ARGUMENT, field + ": " + rule);
  }

  public static ShardmapException notFound(String what) {
    return new ShardmapException(ErrorCode.NOT_FOUND, what);
  }

  public static ShardmapException precondition(String what) {
    return new ShardmapException(ErrorCode.FAILED_PRECONDITION, what);
  }

  @Override
  public String toString() {
    return code + ": " + getMessage();
  }
}
