package io.shardmap.cli;

import io.shardmap.core.KeyRange;
import io.shardmap.core.Keys;
import io.shardmap.proto.v1.KeyType;
import io.shardmap.proto.v1.MergeRangesRequest;
import io.shardmap.proto.v1.MergeRangesResponse;
import io.shardmap.proto.v1.ReassignRangeRequest;
import io.shardmap.proto.v1.ReassignRangeResponse;
import io.shardmap.proto.v1.SplitRangeRequest;
import io.shardmap.proto.v1.SplitRangeResponse;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "range", description = "Change the ranges of a range keyspace (metadata only: rows are not moved).",
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {RangeCommands.Split.class, RangeCommands.Merge.class, RangeCommands.Reassign.class})
final class RangeCommands {

  @Command(name = "split", description = "Split the range containing KEY into [start, KEY) and [KEY, end), "
      + "both kept by the same shard.")
  static final class Split extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "KEY")
    String key;

    @Override
    void execute(ShardmapCtl ctl) {
      KeyType type = ctl.keyspace(keyspace).getKeyType();
      SplitRangeResponse r = ctl.admin().splitRange(SplitRangeRequest.newBuilder().setKeyspace(keyspace)
          .setSplitKey(Keys.toProto(type, KeyRange.parseKey(type, key, "split_key"))).build());
      if (printedJson(r)) {
        return;
      }
      line("split " + keyspace + " at " + key + " (revision " + r.getRevision() + ")");
      Layouts.ranges(ctl.out, List.of(r.getLeft(), r.getRight()));
    }
  }

  @Command(name = "merge", description = "Merge the range ending at BOUNDARY with the one starting there "
      + "(both must have the same shard).")
  static final class Merge extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "BOUNDARY")
    String boundary;

    @Override
    void execute(ShardmapCtl ctl) {
      KeyType type = ctl.keyspace(keyspace).getKeyType();
      MergeRangesResponse r = ctl.admin().mergeRanges(MergeRangesRequest.newBuilder().setKeyspace(keyspace)
          .setBoundary(Keys.toProto(type, KeyRange.parseKey(type, boundary, "boundary"))).build());
      if (printedJson(r)) {
        return;
      }
      line("merged " + keyspace + " at " + boundary + " (revision " + r.getRevision() + ")");
      Layouts.ranges(ctl.out, List.of(r.getMerged()));
    }
  }

  @Command(name = "reassign", description = "Give an existing range (exactly as it stands, e.g. '100..200') to "
      + "SHARD; its epoch increases.")
  static final class Reassign extends Cmd {
    @Parameters(index = "0", paramLabel = "KEYSPACE")
    String keyspace;

    @Parameters(index = "1", paramLabel = "SPEC", description = "start..end; either side may be empty.")
    String range;

    @Parameters(index = "2", paramLabel = "SHARD")
    String shard;

    @Option(names = "--expected-epoch", paramLabel = "EPOCH",
        description = "Fail with FAILED_PRECONDITION unless the range's epoch is still this.")
    long expectedEpoch;

    @Override
    void execute(ShardmapCtl ctl) {
      KeyType type = ctl.keyspace(keyspace).getKeyType();
      ReassignRangeResponse r = ctl.admin().reassignRange(ReassignRangeRequest.newBuilder().setKeyspace(keyspace)
          .setRange(KeyRange.parse(type, range, "range").toProto(type)).setShard(shard)
          .setExpectedEpoch(expectedEpoch).build());
      if (printedJson(r)) {
        return;
      }
      line("reassigned a range of " + keyspace + " to " + r.getRange().getShard() + " (revision "
          + r.getRevision() + ")");
      Layouts.ranges(ctl.out, List.of(r.getRange()));
    }
  }
}
