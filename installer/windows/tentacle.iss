; Tentacle Manager for Windows: an Inno Setup (6.3 or newer) recipe for the frozen folder.
;
; Build on Windows, from the checkout:
;     .venv\Scripts\pyinstaller --noconfirm installer\tentacle.spec   (makes dist\tentacle-manager\)
;     iscc installer\windows\tentacle.iss               (makes dist\tentacle-manager-setup-<version>.exe)
;
; Install, or upgrade in place (the same AppId finds the installed copy and its folder):
;     tentacle-manager-setup-<version>.exe /VERYSILENT /SUPPRESSMSGBOXES /NORESTART
; Uninstall:  "%ProgramFiles%\Tentacle Manager\unins000.exe" /VERYSILENT
;
; Instances are never deleted, on upgrade or on uninstall. The instance index, configurations,
; certificates and secrets live under C:\ProgramData\Octopus\, each instance's home where
; `tentacle create-instance --home` put it; nothing of an instance lives under {app}. The only
; delete below is of {app}\_internal before an upgrade copies the new one, so a file the new
; version no longer ships cannot shadow it.
;
; Agents run as Windows services whose program is {app}\tentacle.exe. An upgrade stops those
; that are running before replacing the files and starts them again afterwards (agents.ps1);
; their scripts keep running and are re-adopted. Uninstalling stops the services and leaves them
; registered, like Tentacle's MSI; `tentacle service --uninstall` removes one.

#define FrozenFolder "..\..\dist\tentacle-manager"
#define Manager "tentacle-manager.exe"
#define Agent "tentacle.exe"
#define AppVersion GetFileProductVersionString(AddBackslash(SourcePath) + FrozenFolder + "\" + Manager)

[Setup]
AppId={{3C7B9E52-6A1D-4F0B-9E27-8D4A51C2F6B3}
AppName=Tentacle Manager
AppVersion={#AppVersion}
AppPublisher=Tentacle Manager contributors
DefaultDirName={autopf}\Tentacle Manager
DisableProgramGroupPage=yes
PrivilegesRequired=admin
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SetupIconFile=..\..\resources\tentacle-manager.ico
UninstallDisplayIcon={app}\{#Manager}
OutputDir=..\..\dist
OutputBaseFilename=tentacle-manager-setup-{#AppVersion}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern

[InstallDelete]
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#FrozenFolder}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "agents.ps1"; Flags: dontcopy

[Icons]
Name: "{autoprograms}\Tentacle Manager"; Filename: "{app}\{#Manager}"; Comment: "Set up, watch and rescue Tentacle deployment agents"

[Run]
Filename: "powershell.exe"; Parameters: "-NoProfile -ExecutionPolicy Bypass -File ""{tmp}\agents.ps1"" -Action Start -List ""{tmp}\agents-to-restart.txt"""; Flags: runhidden; StatusMsg: "Starting the agents that were running..."; Check: AgentsWereStopped
Filename: "{app}\{#Manager}"; Description: "Launch Tentacle Manager"; Flags: postinstall nowait skipifsilent

[UninstallRun]
Filename: "{app}\{#Agent}"; Parameters: "service --instance=* --stop"; Flags: runhidden; RunOnceId: "StopAgents"

[Code]
function AgentsWereStopped: Boolean;
begin
  Result := FileExists(ExpandConstant('{tmp}\agents-to-restart.txt'));
end;

{ An upgrade: stop the agents that run from the files about to be replaced. }
function PrepareToInstall(var NeedsRestart: Boolean): String;
var
  ResultCode: Integer;
begin
  Result := '';
  if FileExists(ExpandConstant('{app}\{#Agent}')) then
  begin
    ExtractTemporaryFile('agents.ps1');
    if not Exec('powershell.exe',
      '-NoProfile -ExecutionPolicy Bypass -File "' + ExpandConstant('{tmp}\agents.ps1') +
      '" -Action Stop -Folder "' + ExpandConstant('{app}') +
      '" -List "' + ExpandConstant('{tmp}\agents-to-restart.txt') + '"',
      '', SW_HIDE, ewWaitUntilTerminated, ResultCode) or (ResultCode <> 0) then
      Result := 'The running Tentacle agents could not be stopped (agents.ps1 exited ' +
        IntToStr(ResultCode) + '). Stop their services, then run Setup again.';
  end;
end;
