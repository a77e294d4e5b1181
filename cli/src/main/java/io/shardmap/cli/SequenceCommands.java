package io.shardmap.cli;

import io.shardmap.proto.v1.CreateSequenceRequest;
import io.shardmap.proto.v1.CreateSequenceResponse;
import io.shardmap.proto.v1.GetSequenceRequest;
import io.shardmap.proto.v1.GetSequenceResponse;
import io.shardmap.proto.v1.ListSequencesRequest;
import io.shardmap.proto.v1.ListSequencesResponse;
import io.shardmap.proto.v1.Sequence;
import java.time.Instant;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "sequence", description = {"Create, show and list dense sequences: named counters in etcd from "
    + "which applications reserve blocks of consecutive numbers (ShardmapClient.sequence; docs/ids.md)."},
    synopsisSubcommandLabel = "COMMAND",
    subcommands = {
      SequenceCommands.Create.class,
      SequenceCommands.Show.class,
      SequenceCommands.ListSequences.class
    })
final class SequenceCommands {

  static List<String> header() {
    return List.of("NAME", "START", "NEXT", "BLOCK", "RESERVATIONS", "CREATED");
  }

  static List<String> row(Sequence s) {
    return List.of(s.getName(), Long.toString(s.getStart()), Long.toString(s.getNextValue()),
        Integer.toString(s.getDefaultBlockSize()), Long.toString(s.getReservations()),
        Instant.ofEpochMilli(s.getCreatedUnixMs()).toString());
  }

  @Command(name = "create", description = "Create a sequence. Refused (exit 4) if it exists.")
  static final class Create extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME", description = "1-63 characters of [a-z0-9_-], starting with a letter.")
    String name;

    @Option(names = "--start", paramLabel = "N", description = "The first number (>= 1; default 1).")
    Long start;

    @Option(names = "--block-size", paramLabel = "N",
        description = "Numbers per reservation when a client does not choose (1-1000000; default 1000).")
    Integer blockSize;

    @Override
    void execute(ShardmapCtl ctl) {
      // 0 on the wire means "the default": an explicit 0 here is a mistake, refused by the server's rule.
      if (start != null && start == 0) {
        throw usage("--start: must be >= 1, got 0");
      }
      if (blockSize != null && blockSize == 0) {
        throw usage("--block-size: must be within 1..1000000, got 0");
      }
      CreateSequenceRequest.Builder req = CreateSequenceRequest.newBuilder().setName(name);
      if (start != null) {
        req.setStart(start);
      }
      if (blockSize != null) {
        req.setDefaultBlockSize(blockSize);
      }
      CreateSequenceResponse r = ctl.admin().createSequence(req.build());
      if (printedJson(r)) {
        return;
      }
      line("created sequence " + r.getSequence().getName() + " (revision " + r.getRevision() + ")");
      table(header(), List.of(row(r.getSequence())));
    }
  }

  @Command(name = "show", description = "Show one sequence as stored now: the next number not yet in any block.")
  static final class Show extends Cmd {
    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Override
    void execute(ShardmapCtl ctl) {
      GetSequenceResponse r = ctl.ids().getSequence(GetSequenceRequest.newBuilder().setName(name).build());
      if (printedJson(r)) {
        return;
      }
      Sequence s = r.getSequence();
      java.util.Map<String, String> kv = new java.util.LinkedHashMap<>();
      kv.put("name", s.getName());
      kv.put("start", Long.toString(s.getStart()));
      kv.put("next", Long.toString(s.getNextValue()) + "  (every number below it is in a reserved block)");
      kv.put("default block size", Integer.toString(s.getDefaultBlockSize()));
      kv.put("reservations", Long.toString(s.getReservations()));
      if (s.getReservations() > 0) {
        kv.put("last block", "[" + s.getLastFirst() + ", " + s.getLastLast() + "]");
      }
      kv.put("created", Instant.ofEpochMilli(s.getCreatedUnixMs()).toString());
      kv.put("revision", Long.toString(r.getRevision()));
      keyValues(kv);
    }
  }

  @Command(name = "list", description = "List every sequence.")
  static final class ListSequences extends Cmd {
    @Override
    void execute(ShardmapCtl ctl) {
      ListSequencesResponse r = ctl.ids().listSequences(ListSequencesRequest.getDefaultInstance());
      if (printedJson(r)) {
        return;
      }
      table(header(), r.getSequencesList().stream().map(SequenceCommands::row).toList());
    }
  }
}
