package io.shardmap.core;

import java.util.regex.Pattern;

/** The naming rules of Shardmap objects, each enforced with an error that names the field and the rule. */
public final class Names {
  private static final Pattern KEYSPACE = Pattern.compile("[a-z][a-z0-9_]{0,62}");
  private static final Pattern SHARD = Pattern.compile("[a-z][a-z0-9_-]{0,62}");
  private static final Pattern REGION = Pattern.compile("[a-z0-9][a-z0-9-]{0,62}");
  private static final Pattern SQL_IDENTIFIER = Pattern.compile("[a-z_][a-z0-9_]{0,62}");
  private static final Pattern HOST = Pattern.compile("[A-Za-z0-9.:\\[\\]-]{1,253}");
  private static final Pattern PROCESS_ID = Pattern.compile("[A-Za-z0-9._:-]{1,128}");

  private Names() {}

  public static String keyspace(String field, String value) {
    return check(field, value, KEYSPACE, "a keyspace name is 1-63 characters of [a-z0-9_], starting with a letter");
  }

  public static String shard(String field, String value) {
    return check(field, value, SHARD, "a shard name is 1-63 characters of [a-z0-9_-], starting with a letter");
  }

  /** The name of a global id generator (its worker ids are leased under it). */
  public static String idGenerator(String field, String value) {
    return check(field, value, SHARD, "a generator name is 1-63 characters of [a-z0-9_-], starting with a letter");
  }

  /** The name of a dense sequence. */
  public static String sequence(String field, String value) {
    return check(field, value, SHARD, "a sequence name is 1-63 characters of [a-z0-9_-], starting with a letter");
  }

  public static String region(String field, String value) {
    return check(field, value, REGION, "a region name is 1-63 characters of [a-z0-9-]");
  }

  public static String sqlIdentifier(String field, String value) {
    return check(field, value, SQL_IDENTIFIER,
        "an unquoted PostgreSQL identifier: 1-63 characters of [a-z0-9_], not starting with a digit");
  }

  public static String host(String field, String value) {
    return check(field, value, HOST, "a host name or IP address");
  }

  /**
   * The id of a client or directory-server process in client presence records ({@code ReportApplied}'s
   * {@code client_id}, a server's {@code --server-id}, which ends an etcd key).
   */
  public static String processId(String field, String value) {
    return check(field, value, PROCESS_ID, "an id is 1-128 characters of [A-Za-z0-9._:-]");
  }

  /**
   * This machine's host name reduced to the characters of {@link #processId} (at most 80), for default
   * ids. Read without a DNS lookup (which can hang on a misconfigured host): the HOSTNAME or COMPUTERNAME
   * environment variable, else /etc/hostname, else {@code fallback}.
   */
  public static String localHostName(String fallback) {
    String h = System.getenv("HOSTNAME");
    if (h == null || h.isBlank()) {
      h = System.getenv("COMPUTERNAME");
    }
    if (h == null || h.isBlank()) {
      try {
        h = java.nio.file.Files.readString(java.nio.file.Path.of("/etc/hostname")).trim();
      } catch (java.io.IOException | RuntimeException e) {
        h = null;
      }
    }
    if (h == null || h.isBlank()) {
      return fallback;
    }
    h = h.trim().replaceAll("[^A-Za-z0-9._-]", "-");
    return h.length() <= 80 ? h : h.substring(0, 80);
  }

  private static String check(String field, String value, Pattern p, String rule) {
    if (value == null || value.isEmpty()) {
      throw ShardmapException.invalid(field, "is required (" + rule + ")");
    }
    if (!p.matcher(value).matches()) {
      throw ShardmapException.invalid(field, rule + "; got '" + abbreviate(value) + "'");
    }
    return value;
  }

  static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }
}
