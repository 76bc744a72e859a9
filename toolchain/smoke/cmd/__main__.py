import pulumi
import pulumi_command as command

hi = command.local.Command("hi", create="echo hi", delete="echo bye")
pulumi.export("out", hi.stdout)
