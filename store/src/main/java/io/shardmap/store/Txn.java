package io.shardmap.store;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** An immutable transaction: compares that must all hold, then writes applied atomically. */
public record Txn(List<Compare> compares, List<Write> writes) {

  public Txn {
    compares = List.copyOf(compares);
    writes = List.copyOf(writes);
  }

  /** One write of a transaction. */
  public sealed interface Write permits Put, Delete, DeletePrefix {}

  /** Puts a value, optionally attached to a lease (0 = none). */
  public record Put(String key, byte[] value, long lease) implements Write {
    public Put {
      Objects.requireNonNull(key, "key");
      Objects.requireNonNull(value, "value");
    }
  }

  public record Delete(String key) implements Write {
    public Delete {
      Objects.requireNonNull(key, "key");
    }
  }

  public record DeletePrefix(String prefix) implements Write {
    public DeletePrefix {
      if (prefix == null || prefix.isEmpty()) {
        throw new IllegalArgumentException("prefix must not be empty");
      }
    }
  }

  public static Builder builder() {
    return new Builder();
  }

  public static final class Builder {
    private final List<Compare> compares = new ArrayList<>();
    private final List<Write> writes = new ArrayList<>();

    private Builder() {}

    public Builder compare(Compare c) {
      compares.add(c);
      return this;
    }

    public Builder put(String key, byte[] value) {
      writes.add(new Put(key, value, 0));
      return this;
    }

    public Builder put(String key, byte[] value, long lease) {
      writes.add(new Put(key, value, lease));
      return this;
    }

    public Builder delete(String key) {
      writes.add(new Delete(key));
      return this;
    }

    public Builder deletePrefix(String prefix) {
      writes.add(new DeletePrefix(prefix));
      return this;
    }

    public int compareCount() {
      return compares.size();
    }

    public int writeCount() {
      return writes.size();
    }

    public Txn build() {
      return new Txn(compares, writes);
    }
  }
}
